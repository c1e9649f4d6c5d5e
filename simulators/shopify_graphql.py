"""GraphQL documents as a Shopify store takes them: parsed, validated and their variables
coerced by graphql-core against invsync's SDL of the Admin API (``schemas/shopify_admin.graphql``,
package data of this package), then read through the AST.

graphql-core (the Python port of the reference implementation, GraphQL.js) does what the spec's
"Validation" and "CoerceVariableValues" sections say, so a misspelt field, a missing required
argument, a variable of the wrong nullability or a variable value of the wrong type is refused
here as Shopify refuses it: HTTP 200 with top-level ``errors`` (shopify.dev/docs/api/usage/
response-codes: GraphQL requests answer 200 and report errors in the ``errors`` field).
Each error carries ``message`` and ``locations``; the ``extensions.code`` of a validation error
is the one Shopify's GraphQL server (graphql-ruby) gives that rule, e.g. ``undefinedField`` with
``typeName`` and ``fieldName`` for an unknown field (the message in Shopify's words, "Field 'x'
doesn't exist on type 'T'"); a variable value that does not coerce is ``INVALID_VARIABLE``.
A document with a syntax error answers ``errors`` with the parser's message and location.

``prepare`` returns an ``Operation``: the root field's name, its coerced arguments and
directives, the arguments of a nested field (``inventoryLevel(locationId:)``) and ``shape``,
which cuts an answer down to what the document selected (aliases honoured), as a GraphQL server
does. The simulator answers one root field per document (invsync's adapter sends no more).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    get_named_type,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import (
    VariableValues,
    get_argument_values,
    get_directive_values,
    get_variable_values,
)
from graphql.validation import (
    FieldsOnCorrectTypeRule,
    KnownArgumentNamesRule,
    KnownDirectivesRule,
    KnownTypeNamesRule,
    NoUndefinedVariablesRule,
    NoUnusedVariablesRule,
    ProvidedRequiredArgumentsRule,
    ScalarLeafsRule,
    ValuesOfCorrectTypeRule,
    VariablesAreInputTypesRule,
    VariablesInAllowedPositionRule,
)

__all__ = ["SDL_FILE", "DocumentError", "Operation", "admin_schema", "check", "prepare"]

#: The SDL, relative to this package.
SDL_FILE = "schemas/shopify_admin.graphql"

#: Validation rule -> the ``extensions.code`` graphql-ruby (Shopify's server) gives its error.
_CODES: dict[type, str] = {
    FieldsOnCorrectTypeRule: "undefinedField",
    KnownArgumentNamesRule: "argumentNotAccepted",
    ProvidedRequiredArgumentsRule: "missingRequiredArguments",
    VariablesInAllowedPositionRule: "variableMismatch",
    NoUnusedVariablesRule: "variableNotUsed",
    NoUndefinedVariablesRule: "variableNotDefined",
    KnownTypeNamesRule: "undefinedType",
    ScalarLeafsRule: "selectionMismatch",
    KnownDirectivesRule: "undefinedDirective",
    ValuesOfCorrectTypeRule: "argumentLiteralsIncompatible",
    VariablesAreInputTypesRule: "variableRequiresValidType",
}


@functools.cache
def admin_schema() -> GraphQLSchema:
    """The Admin API schema of the SDL file (built once)."""
    return build_schema(files(__package__).joinpath(SDL_FILE).read_text(encoding="utf-8"))


class DocumentError(Exception):
    """The store refuses the request as a whole: ``errors`` in Shopify's shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("message")) for e in errors))
        self.errors = errors


def _located(error: GraphQLError, **extensions: Any) -> dict[str, Any]:
    shown: dict[str, Any] = {"message": error.message}
    if error.locations:
        shown["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if extensions:
        shown["extensions"] = extensions
    return shown


def _validation_error(rule: type, error: GraphQLError) -> dict[str, Any]:
    code = _CODES.get(rule)
    if rule is FieldsOnCorrectTypeRule and error.nodes:
        field = error.nodes[0]
        if isinstance(field, FieldNode):
            # graphql-core names the type in its message; Shopify's wording names it so too.
            type_name = error.message.split("on type '", 1)[-1].split("'", 1)[0]
            shown = _located(error, code=code, typeName=type_name, fieldName=field.name.value)
            shown["message"] = f"Field '{field.name.value}' doesn't exist on type '{type_name}'"
            return shown
    return _located(error, code=code) if code else _located(error)


@functools.lru_cache(maxsize=256)
def _checked(query: str) -> DocumentNode | DocumentError:
    """The parsed document, or why it is refused (cached: the adapter's documents are constant
    strings, so each is parsed and validated once)."""
    schema = admin_schema()
    try:
        document = parse(query)
    except GraphQLError as exc:
        return DocumentError([_located(exc)])
    if not validate(schema, document):
        return document
    errors: list[dict[str, Any]] = []
    for rule in specified_rules:  # one rule at a time, to name each error's code
        found = validate(schema, document, [rule])
        errors.extend(_validation_error(rule, error) for error in found)
    return DocumentError(errors)


def check(query: str) -> DocumentNode:
    """Parse and validate ``query`` against the SDL; DocumentError (Shopify's shape) if not."""
    checked = _checked(query)
    if isinstance(checked, DocumentError):
        raise checked
    return checked


@dataclass(frozen=True)
class Operation:
    """One validated operation of a request, its variables coerced."""

    kind: str  # "query" or "mutation"
    name: str | None
    root_type: GraphQLObjectType
    field: FieldNode
    values: VariableValues
    fragments: Mapping[str, FragmentDefinitionNode]

    @property
    def field_name(self) -> str:
        """The root field (``inventorySetQuantities``...)."""
        return self.field.name.value

    @property
    def response_key(self) -> str:
        """The root field's key in ``data`` (its alias, if any)."""
        return (self.field.alias or self.field.name).value

    @functools.cached_property
    def arguments(self) -> dict[str, Any]:
        """The root field's arguments, coerced (defaults applied, absent optionals left out;
        computed once)."""
        definition = self.root_type.fields[self.field_name]
        return get_argument_values(definition, self.field, self.values)

    def directive(self, name: str) -> dict[str, Any] | None:
        """The arguments of directive ``@name`` on the root field (None: not there)."""
        definition = admin_schema().get_directive(name)
        if definition is None:
            return None
        return get_directive_values(definition, self.field, self.values)

    def nested_arguments(self, *path: str) -> dict[str, Any] | None:
        """The coerced arguments of the field at ``path`` below the root field (by field name,
        the first selection that matches), or None when the document does not select it."""
        parent: Any = get_named_type(self.root_type.fields[self.field_name].type)
        node = self.field
        for name in path:
            if node.selection_set is None:
                return None
            found = next(
                (f for f in self._fields(node.selection_set) if f.name.value == name), None
            )
            if found is None or not isinstance(parent, GraphQLObjectType):
                return None
            definition = parent.fields[name]
            node, parent = found, get_named_type(definition.type)
        return get_argument_values(definition, node, self.values) if path else self.arguments

    def shape(self, data: Any) -> Any:
        """``data`` (the root field's full answer) cut down to the document's selection."""
        return self._shape(data, self.field.selection_set)

    def _fields(self, selection_set: SelectionSetNode) -> list[FieldNode]:
        return _fields(selection_set, self.fragments)

    def _shape(self, data: Any, selection_set: SelectionSetNode | None) -> Any:
        if selection_set is None or data is None:
            return data
        if isinstance(data, list):
            return [self._shape(item, selection_set) for item in data]
        shaped: dict[str, Any] = {}
        for field in self._fields(selection_set):
            name = field.name.value
            key = (field.alias or field.name).value
            if name == "__typename":
                shaped[key] = data.get("__typename")
                continue
            shaped[key] = self._shape(data.get(name), field.selection_set)
        return shaped


def _fields(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> list[FieldNode]:
    """The fields of a selection set, fragments spread in."""
    found: list[FieldNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            found.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            found.extend(_fields(selection.selection_set, fragments))
        elif isinstance(selection, FragmentSpreadNode):
            found.extend(_fields(fragments[selection.name.value].selection_set, fragments))
    return found


def prepare(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None
) -> Operation:
    """The operation a request asks for, validated, with its variables coerced; DocumentError
    (Shopify's error shape) when the document, the operation or a variable is refused."""
    document = check(query)
    schema = admin_schema()
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if operation_name:
        chosen = [o for o in operations if o.name and o.name.value == operation_name]
        if not chosen:
            raise DocumentError([{"message": f"No operation named \"{operation_name}\""}])
    elif len(operations) > 1:
        raise DocumentError([{"message": "An operation name is required"}])
    else:
        chosen = operations
    operation = chosen[0]
    kind = operation.operation.value
    root_type = schema.mutation_type if kind == "mutation" else schema.query_type
    if root_type is None or kind not in ("query", "mutation"):
        raise DocumentError([{"message": f"Schema is not configured for {kind}s"}])
    values = get_variable_values(
        schema, operation.variable_definitions or (), dict(variables or {})
    )
    if isinstance(values, list):
        raise DocumentError([_located(error, code="INVALID_VARIABLE") for error in values])
    roots = _fields(operation.selection_set, fragments)
    if len(roots) != 1:
        raise DocumentError([{
            "message": "This simulated store answers exactly one root field per document",
            "extensions": {"code": "BAD_REQUEST"},
        }])
    name = operation.name.value if operation.name else None
    return Operation(kind, name, root_type, roots[0], values, fragments)
