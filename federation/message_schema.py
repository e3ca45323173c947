"""JSON Schema (draft 2020-12) of every message of the contract, and the check on receipt.

One rule, one home: the tables of :mod:`federation.contract` (``SCHEMAS``, ``DEVICE_STATE``,
``NETWORK_MODELS``) are turned into a JSON Schema per message (:func:`json_schema`), written to
``docs/schemas/<name>.schema.json`` by ``smartnet build --schemas DIR``, and every document a
federate receives is checked against that same schema (:func:`schema_errors`, called by
``contract.validate_message``). The checker implements the subset of JSON Schema the generator
emits (``type``, ``const``, ``enum``, ``required``, ``properties``, ``items``, ``minItems``,
``allOf`` with ``if``/``then``); any standard validator gives the same verdict on these files,
except that scalar ``number`` fields (marked ``"x-finite": true``, an annotation other validators
ignore) must also be finite (Python's ``json`` reads ``NaN``; arrays may hold ``NaN``) and
an ``integer`` must be written without a fraction (``3``, not ``3.0``).
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from typing import Any

from federation.contract import (
    DEVICE_STATE,
    NETWORK_MODELS,
    SCHEMAS,
    FieldSpec,
    MessageSchema,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: where the checked-in schema files live (a test keeps them equal to the generator's output)
SCHEMA_DIR = pathlib.Path(__file__).resolve().parents[1] / "docs" / "schemas"

_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "number?": {"type": ["number", "null"]},
    "string": {"type": "string"},
    "list": {"type": "array"},
    "object": {"type": "object"},
    "int[]": {"type": "array", "items": {"type": "integer"}},
    "number[]": {"type": "array", "items": {"type": "number"}},
    "string[]": {"type": "array", "items": {"type": "string"}},
    "number[][]": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
    # a vector per element, or a matrix element x period
    "number[]|number[][]": {
        "type": "array",
        "items": {"type": ["number", "array"], "items": {"type": "number"}},
    },
}


def _field(spec: FieldSpec) -> dict[str, Any]:
    out = dict(_TYPES[spec.type])
    if spec.type in ("number", "number?"):
        out["x-finite"] = True  # an annotation for other validators; checked here
    unit = f" [{spec.unit}]" if spec.unit not in ("-", "") else ""
    out["description"] = spec.description + unit
    return out


def _object(fields: tuple[FieldSpec, ...], description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    if description:
        out["description"] = description
    out["required"] = [f.name for f in fields]
    out["properties"] = {f.name: _field(f) for f in fields}
    return out


def _measurement_item(schema: MessageSchema) -> dict[str, Any]:
    """An entry of ``measurements.items``: its ``state`` depends on its ``category``."""
    item = _object(schema.item_fields)
    item["properties"]["category"]["enum"] = sorted(DEVICE_STATE)
    common = DEVICE_STATE["_all"]
    item["allOf"] = [
        {
            "if": {"properties": {"category": {"const": category}}},
            "then": {
                "properties": {
                    "state": _object(
                        (*common, *fields),
                        f"state of the {category} devices, arrays in the order of ids",
                    )
                }
            },
        }
        for category, fields in sorted(DEVICE_STATE.items())
        if category != "_all"
    ]
    return item


def _network_model() -> dict[str, Any]:
    """``network_model.model``: PTDF when ``network`` is ``tso``, LinDistFlow otherwise."""
    return {
        "allOf": [
            {
                "if": {"properties": {"network": {"const": "tso"}}},
                "then": {
                    "properties": {
                        "model": _object(NETWORK_MODELS["ptdf"], "DC (PTDF) transmission model")
                    }
                },
                "else": {
                    "properties": {
                        "model": _object(
                            NETWORK_MODELS["lindistflow"], "LinDistFlow distribution model"
                        )
                    }
                },
            }
        ]
    }


@functools.cache
def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of message ``name`` (a fresh copy is not made: do not modify it)."""
    schema = SCHEMAS[name]
    out: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": f"https://smartnet-cosim.invalid/schemas/{name}.schema.json",
        "title": name,
        **_object(schema.fields, schema.description),
    }
    out["properties"]["schema_version"]["const"] = schema.version
    out["properties"]["schema_version"]["description"] = f"always {schema.version}"
    out["properties"]["kind"]["const"] = name
    if schema.item_fields:
        measured = name == "measurements"
        items = _measurement_item(schema) if measured else _object(schema.item_fields)
        out["properties"]["items"]["items"] = items
    if name == "network_model":
        out.update(_network_model())
    return out


def schema_files() -> dict[str, str]:
    """File name -> text of every message's JSON Schema (``smartnet build --schemas``)."""
    return {
        f"{name}.schema.json": json.dumps(json_schema(name), indent=2) + "\n" for name in SCHEMAS
    }


def write_schemas(out_dir: str | pathlib.Path) -> list[pathlib.Path]:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in schema_files().items():
        (out / name).write_text(text)
        paths.append(out / name)
    return paths


# --------------------------------------------------------------------------- checking


def schema_errors(doc: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Every way ``doc`` breaks ``schema`` (empty: valid), each naming the JSON path."""
    where = where or str(schema.get("title", "document"))
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None and not _is_type(doc, expected):
        return [f"{where}: is {_type_name(doc)}, expected {_types_text(expected)}"]
    if isinstance(doc, float) and not math.isfinite(doc) and schema.get("x-finite"):
        return [f"{where}: is not finite ({doc})"]
    if "const" in schema and doc != schema["const"]:
        errors.append(f"{where}: {doc!r} != {schema['const']!r}")
    if "enum" in schema and doc not in schema["enum"]:
        errors.append(f"{where}: {doc!r} is not one of {', '.join(map(str, schema['enum']))}")
    if isinstance(doc, dict):  # in the order of the fields
        required = schema.get("required", ())
        properties = schema.get("properties", {})
        for key in (*properties, *(k for k in required if k not in properties)):
            if key in doc:
                if key in properties:
                    errors.extend(schema_errors(doc[key], properties[key], f"{where}.{key}"))
            elif key in required:
                errors.append(f"{where}: missing field {key!r}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            errors.extend(schema_errors(item, schema["items"], f"{where}[{i}]"))
    for part in schema.get("allOf", ()):
        if "if" in part:
            matched = not schema_errors(doc, part["if"], where)
            branch = part.get("then") if matched else part.get("else")
            if branch is not None:
                errors.extend(schema_errors(doc, branch, where))
        else:
            errors.extend(schema_errors(doc, part, where))
    return errors


_PY = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _is_type(doc: Any, expected: str | list[str]) -> bool:
    names = [expected] if isinstance(expected, str) else expected
    if isinstance(doc, bool):
        return "boolean" in names
    return any(isinstance(doc, _PY[n]) for n in names)


def _type_name(doc: Any) -> str:
    return {dict: "object", list: "array", str: "string", type(None): "null", bool: "boolean"}.get(
        type(doc), "integer" if isinstance(doc, int) else "number"
    )


def _types_text(expected: str | list[str]) -> str:
    return expected if isinstance(expected, str) else " or ".join(expected)
