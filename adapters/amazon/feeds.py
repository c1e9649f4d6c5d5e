"""Large batches: one JSON_LISTINGS_FEED, submitted, polled on the clock, and its report read.

- JSON_LISTINGS_FEED (``schemas/feeds/listings-feed-schema-v2.json``): ``{"header": {"sellerId",
  "version": "2.0"}, "messages": [{"messageId", "sku", "operationType": "PATCH", "productType",
  "patches"}]}``, at most 25 000 messages (``maxItems`` since 2026-01-22), each a ``merge`` of the
  quantity (https://developer-docs.amazon.com/sp-api/docs/merge-a-listing); its processing report
  (``schemas/feeds/listings-feed-processing-report-schema-v2.json``) ``{"header", "issues":
  [{"messageId", "sku", "code", "severity", "message"}], "summary"}``.
- Feeds API 2021-06-30 (``models/feeds-api-model/feeds_2021-06-30.json``): ``createFeedDocument``
  ``POST /feeds/2021-06-30/documents`` ``{"contentType"}`` -> 201 ``{"feedDocumentId", "url"}``
  (0.5 rps, burst 15), ``PUT`` the document to that presigned ``url`` with the same
  Content-Type, ``createFeed`` ``POST /feeds/2021-06-30/feeds`` ``{"feedType", "marketplaceIds",
  "inputFeedDocumentId"}`` -> 202 ``{"feedId"}`` (0.0083 rps, burst 15), ``getFeed`` ``GET
  /feeds/2021-06-30/feeds/{feedId}`` -> ``{"processingStatus": IN_QUEUE|IN_PROGRESS|DONE|FATAL|
  CANCELLED, "resultFeedDocumentId"}`` (2 rps, burst 15), ``getFeedDocument`` ``GET
  /feeds/2021-06-30/documents/{id}`` -> ``{"url", "compressionAlgorithm": "GZIP"?}`` (0.0222 rps,
  burst 10). https://developer-docs.amazon.com/sp-api/docs/feeds-api-v2021-06-30-use-case-guide

The feed is polled every ``options.feed_poll_s`` until processed or ``options.feed_timeout_s``
ran out (then every SKU is retryable: quantities are absolute, so the feed is simply sent again).
A throttled poll is waited out and counted as a throttled push; a throttle that ends the wait
(the report's ``getFeedDocument``) makes every SKU ``throttled``. A SKU without a listing gets an
ERROR issue with its ``messageId`` in the report: ``permanent`` for that SKU alone.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence

import msgspec

from ..base import ChannelError, Outcome, PushResult, Retryable, Throttled, Update
from .client import SpApiClient, decode_or_retry
from .wire import (
    FEED_CONTENT_TYPE,
    FEED_TYPE,
    FEEDS_PATH,
    CreateFeedDocumentSpecification,
    CreateFeedSpecification,
    Feed,
    FeedHeader,
    FeedMessage,
    ListingsFeed,
    ProcessingReport,
    ReportIssue,
    decode_created_feed,
    decode_document,
    decode_feed,
    decode_feed_document,
    decode_report,
    encode,
    issue_text,
    patches,
)

__all__ = ["feed_outcomes", "push_feed"]

_FINAL_FEED = frozenset({"DONE", "FATAL", "CANCELLED"})


async def push_feed(client: SpApiClient, updates: Sequence[Update]) -> list[PushResult]:
    """Send ``updates`` as one feed and wait for its report: per-SKU results, or the failure of
    a call before ``createFeed`` raised (nothing can have been applied then)."""
    options = client.options
    feed = ListingsFeed(
        header=FeedHeader(seller_id=options.seller_id),
        messages=[
            FeedMessage(
                message_id=n,
                sku=u.sku,
                operation_type="PATCH",
                product_type=options.product_type,
                patches=patches(options.fulfillment_channel_code, u.available),
            )
            for n, u in enumerate(updates, start=1)
        ],
    )
    # Until createFeed answers nothing can be applied: failures are the whole call's.
    spec = CreateFeedDocumentSpecification(content_type=FEED_CONTENT_TYPE)
    reply = await client.call(
        "createFeedDocument", "POST", f"{FEEDS_PATH}/documents", body=encode(spec)
    )
    document = decode_or_retry(decode_document, reply, "createFeedDocument")
    await client.upload(document.url, encode(feed), FEED_CONTENT_TYPE)
    create_spec = CreateFeedSpecification(
        feed_type=FEED_TYPE,
        marketplace_ids=[options.marketplace_id],
        input_feed_document_id=document.feed_document_id,
    )
    reply = await client.call("createFeed", "POST", f"{FEEDS_PATH}/feeds", body=encode(create_spec))
    feed_id = decode_or_retry(decode_created_feed, reply, "createFeed").feed_id
    # From here the feed may be applied whatever we hear: no failure is permanent.
    try:
        return await _feed_results(client, feed_id, updates)
    except ChannelError as exc:
        error = f"feed {feed_id}: {exc.message}"
        outcome: Outcome = "throttled" if isinstance(exc, Throttled) else "retryable"
        return [
            PushResult(sku=u.sku, outcome=outcome, retry_after=exc.retry_after, error=error)
            for u in updates
        ]


async def _feed_results(
    client: SpApiClient, feed_id: str, updates: Sequence[Update]
) -> list[PushResult]:
    # The deadline is on the clock the polls sleep on, so a test clock moves both together.
    clock = client.clock
    timeout_s = client.options.feed_timeout_s
    deadline = clock.now() + timeout_s
    while True:
        wait = client.options.feed_poll_s
        try:
            reply = await client.call("getFeed", "GET", f"{FEEDS_PATH}/feeds/{feed_id}")
            feed: Feed = decode_or_retry(decode_feed, reply, "getFeed")
            if feed.processing_status in _FINAL_FEED:
                break
        except Throttled as exc:
            client.throttled()
            wait = max(wait, exc.retry_after or 0.0)
        except Retryable:
            pass  # a lost poll: the feed goes on regardless
        if clock.now() + wait > deadline:
            raise Retryable(f"not processed within {timeout_s:g} s")
        await clock.sleep(wait)
    if feed.processing_status == "CANCELLED":
        raise Retryable("cancelled before processing")
    if feed.result_feed_document_id is None:
        raise Retryable(f"{feed.processing_status} without a processing report")
    report = await _report(client, feed.result_feed_document_id)
    return feed_outcomes(updates, report, fatal=feed.processing_status == "FATAL")


async def _report(client: SpApiClient, document_id: str) -> ProcessingReport:
    reply = await client.call("getFeedDocument", "GET", f"{FEEDS_PATH}/documents/{document_id}")
    document = decode_or_retry(decode_feed_document, reply, "getFeedDocument")
    raw = await client.download(document.url)
    if document.compression_algorithm == "GZIP":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise Retryable(f"processing report is not valid gzip: {exc}") from exc
    try:
        return decode_report(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Retryable(f"unreadable processing report: {exc}") from exc


def feed_outcomes(
    updates: Sequence[Update], report: ProcessingReport, *, fatal: bool
) -> list[PushResult]:
    """Per-SKU results from the processing report: messages with ERROR issues are refused for
    good, feed-level ERRORs refuse every message, a FATAL feed leaves the rest unknown."""
    by_message: dict[int, list[ReportIssue]] = {}
    feed_level: list[ReportIssue] = []
    for issue in report.issues:
        if issue.severity != "ERROR":
            continue
        if issue.message_id is None:
            feed_level.append(issue)
        else:
            by_message.setdefault(issue.message_id, []).append(issue)
    out: list[PushResult] = []
    for n, update in enumerate(updates, start=1):
        errors = by_message.get(n) or feed_level
        if errors:
            out.append(PushResult(sku=update.sku, outcome="permanent", error=issue_text(errors)))
        elif fatal:
            out.append(
                PushResult(sku=update.sku, outcome="retryable", error="feed aborted (FATAL)")
            )
        else:
            out.append(PushResult(sku=update.sku, outcome="ok"))
    return out
