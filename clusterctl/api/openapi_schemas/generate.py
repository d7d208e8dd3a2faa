"""Generate the OpenAPI schema data the API server serves (run by hand, output committed).

Two stages, both offline:

``extract-go DIR_API DIR_APIMACHINERY``
    Reads the Go types of ``k8s.io/api`` and ``k8s.io/apimachinery/pkg/apis/meta/v1`` (a checkout
    of each) and writes ``go_fields.json``: per definition and JSON field, the Go type (to tell
    int32 from int64, Time from MicroTime, Quantity and IntOrString from plain strings) and the
    ``patchStrategy``/``patchMergeKey`` struct tags. The patch tags are printed as a Python table
    to paste into ``patch_strategies.py``, which is the one maintained source of truth for them.

``build``
    Walks the model classes of the official ``kubernetes`` Python client (field names, JSON names,
    python types, descriptions, required flags) from each of our kinds, resolves every class to
    its Kubernetes definition name (``io.k8s.api.core.v1.Pod``...), and writes
    ``definitions.json``: OpenAPI v3 schemas shaped like the ones ``kube-apiserver`` publishes
    (``allOf``-wrapped references, ``x-kubernetes-group-version-kind`` on kinds, the patch
    extensions from ``patch_strategies.py``).

The server never imports ``kubernetes``; it only reads ``definitions.json``.
Usage: ``python -m clusterctl.api.openapi_schemas.generate build``.

Provenance of the committed data: ``go_fields.json`` was extracted from kubernetes/api at
10b39a39bcee995dfe7cd5e8e7b922be5e46f1e2 and kubernetes/apimachinery at
eed236ceee2c19c2753a3d93ac0631dc20750454 (``git archive`` of the package directories listed in
``GO_PACKAGES`` and ``pkg/apis/meta/v1``); ``definitions.json`` was built with kubernetes==37.0.2.
Both are newer than the API level we serve (1.32): they describe a superset of 1.32's fields, and
the patch strategies of every 1.32 field are unchanged. Alpha/beta types the client knows but our
groups do not serve are left out (the build prints them).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
GO_FIELDS = HERE / "go_fields.json"
DEFINITIONS = HERE / "definitions.json"

META = "io.k8s.apimachinery.pkg.apis.meta.v1"

#: Go package directory (inside k8s.io/api) -> definition name prefix.
GO_PACKAGES = {
    "core/v1": "io.k8s.api.core.v1",
    "apps/v1": "io.k8s.api.apps.v1",
    "batch/v1": "io.k8s.api.batch.v1",
    "autoscaling/v1": "io.k8s.api.autoscaling.v1",
    "autoscaling/v2": "io.k8s.api.autoscaling.v2",
    "discovery/v1": "io.k8s.api.discovery.v1",
    "coordination/v1": "io.k8s.api.coordination.v1",
    "scheduling/v1": "io.k8s.api.scheduling.v1",
    "policy/v1": "io.k8s.api.policy.v1",
}

#: (group, version, kind, python client class) of every kind we serve. Lists are added per kind.
KINDS: list[tuple[str, str, str, str]] = [
    ("", "v1", "Namespace", "V1Namespace"),
    ("", "v1", "Node", "V1Node"),
    ("", "v1", "Pod", "V1Pod"),
    ("", "v1", "Service", "V1Service"),
    ("", "v1", "Endpoints", "V1Endpoints"),
    ("", "v1", "ConfigMap", "V1ConfigMap"),
    ("", "v1", "Secret", "V1Secret"),
    ("", "v1", "Event", "CoreV1Event"),
    ("", "v1", "ServiceAccount", "V1ServiceAccount"),
    ("", "v1", "Binding", "V1Binding"),
    ("discovery.k8s.io", "v1", "EndpointSlice", "V1EndpointSlice"),
    ("apps", "v1", "Deployment", "V1Deployment"),
    ("apps", "v1", "ReplicaSet", "V1ReplicaSet"),
    ("apps", "v1", "DaemonSet", "V1DaemonSet"),
    ("apps", "v1", "StatefulSet", "V1StatefulSet"),
    ("batch", "v1", "Job", "V1Job"),
    ("batch", "v1", "CronJob", "V1CronJob"),
    ("coordination.k8s.io", "v1", "Lease", "V1Lease"),
    ("scheduling.k8s.io", "v1", "PriorityClass", "V1PriorityClass"),
    ("policy", "v1", "PodDisruptionBudget", "V1PodDisruptionBudget"),
    ("policy", "v1", "Eviction", "V1Eviction"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "V2HorizontalPodAutoscaler"),
    ("autoscaling", "v1", "Scale", "V1Scale"),
]
#: Kinds without a List of their own (subresource bodies).
NO_LIST = {"Binding", "Eviction", "Scale"}
#: meta/v1 kinds every group/version document carries.
META_CLASSES = ["V1Status", "V1DeleteOptions", "V1APIResourceList", "V1WatchEvent"]

#: Schemas of the scalar-like apimachinery types, as kube-apiserver publishes them in v3.
SPECIAL = {
    f"{META}.Time": {
        "description": "Time is a wrapper around time.Time which supports correct marshaling to YAML "
        "and JSON.  Wrappers are provided for many of the factory methods that the time package offers.",
        "type": "string",
        "format": "date-time",
    },
    f"{META}.MicroTime": {
        "description": "MicroTime is version of Time with microsecond level precision.",
        "type": "string",
        "format": "date-time",
    },
    f"{META}.FieldsV1": {
        "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.",
        "type": "object",
    },
    "io.k8s.apimachinery.pkg.runtime.RawExtension": {
        "description": "RawExtension is used to hold extensions in external versions.",
        "type": "object",
    },
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON "
        "or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows "
        "you to have, for example, a JSON field that can accept a name or number.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    f"{META}.Patch": {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH "
        "request body.",
        "type": "object",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point representation of a number. It provides convenient "
        "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors. "
        "The serialization format is: <quantity> ::= <signedNumber><suffix> (e.g. 100m, 1Gi, 2).",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}


# --------------------------------------------------------------------------- extract-go


_TYPE_RE = re.compile(r"^type (\w+) struct \{\s*$")
_FIELD_RE = re.compile(r"^\t(?:(\w+)\s+)?(\S+)\s+`([^`]*)`")
_TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def _go_doc(comment: list[str]) -> str:
    """A field's doc comment as openapi-gen renders it: markers dropped, cut at '---'."""
    paragraphs: list[list[str]] = [[]]
    for line in comment:
        if line.startswith("---"):
            break
        if line.startswith("+"):
            continue
        if not line:
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _parse_go_structs(text: str) -> dict[str, list[tuple[str | None, str, dict[str, str]]]]:
    """Struct name -> [(field name or None when embedded, Go type, tags + "doc")]."""
    structs: dict[str, list[tuple[str | None, str, dict[str, str]]]] = {}
    current: list | None = None
    comment: list[str] = []
    for line in text.splitlines():
        if current is None:
            match = _TYPE_RE.match(line)
            if match:
                current = structs.setdefault(match.group(1), [])
                comment = []
            continue
        if line.startswith("}"):
            current = None
            continue
        stripped = line.strip()
        if stripped.startswith("//"):
            comment.append(stripped[2:].strip())
            continue
        match = _FIELD_RE.match(line)
        if match:
            name, gotype, tags = match.groups()
            parsed = dict(_TAG_RE.findall(tags))
            parsed["doc"] = _go_doc(comment)
            current.append((name, gotype, parsed))
        comment = []
    return structs


def _go_files(directory: Path):
    for path in sorted(directory.glob("*.go")):
        if path.name.endswith("_test.go") or "generated" in path.name:
            continue
        yield path


def extract_go(api_dir: Path, apimachinery_dir: Path) -> dict[str, dict[str, dict[str, str]]]:
    packages = {prefix: api_dir / sub for sub, prefix in GO_PACKAGES.items()}
    packages[META] = apimachinery_dir / "pkg/apis/meta/v1"
    result: dict[str, dict[str, dict[str, str]]] = {}
    for prefix, directory in packages.items():
        structs: dict = {}
        for path in _go_files(directory):
            structs.update(_parse_go_structs(path.read_text()))

        def flatten(name: str, seen: frozenset = frozenset()) -> dict[str, dict[str, str]]:
            fields: dict[str, dict[str, str]] = {}
            for field, gotype, tags in structs.get(name, []):
                json_name = tags.get("json", "").split(",")[0]
                if json_name == "-":
                    continue
                if not json_name:  # embedded without a name, or `json:",inline"`: fields move up
                    embedded = gotype.lstrip("*").split(".")[-1]
                    if embedded not in seen and embedded in structs:
                        fields.update(flatten(embedded, seen | {embedded}))
                    continue
                entry = {"go": gotype}
                if tags.get("doc"):
                    entry["doc"] = tags["doc"]  # the python client lacks some fields' docs
                if "patchStrategy" in tags:
                    entry["patchStrategy"] = tags["patchStrategy"]
                if "patchMergeKey" in tags:
                    entry["patchMergeKey"] = tags["patchMergeKey"]
                fields[json_name or field] = entry
            return fields

        for name in structs:
            result[f"{prefix}.{name}"] = flatten(name)
    return result


def _print_patch_table(go_fields: dict[str, dict[str, dict[str, str]]]) -> None:
    print("PATCH_STRATEGIES = {")
    for definition in sorted(go_fields):
        rows = {
            field: (meta["patchStrategy"], meta.get("patchMergeKey"))
            for field, meta in sorted(go_fields[definition].items())
            if "patchStrategy" in meta
        }
        if rows:
            print(f"    {definition!r}: {{")
            for field, row in rows.items():
                print(f"        {field!r}: {row!r},")
            print("    },")
    print("}")


# --------------------------------------------------------------------------- build


_PREFIX_RE = re.compile(r"^([A-Z][a-z]+)?(V\d+(?:alpha\d+|beta\d+)?)([A-Z]\w*)$")


class _Unresolvable(Exception):
    """A python client class that no Go package we serve defines."""


class _Builder:
    def __init__(self, go_fields: dict[str, dict[str, dict[str, str]]]) -> None:
        import kubernetes.client

        from clusterctl.api.openapi_schemas.patch_strategies import PATCH_STRATEGIES

        self.client = kubernetes.client
        self.go_fields = go_fields
        self.patch = PATCH_STRATEGIES
        self.definitions: dict[str, dict] = {}
        self.names: dict[str, str] = {}
        self.skipped: list[str] = []

    def definition_name(self, class_name: str) -> str:
        """Python client class name -> Kubernetes definition name (``V1Pod`` -> ``io.k8s.api.core.v1.Pod``)."""
        if class_name in self.names:
            return self.names[class_name]
        match = _PREFIX_RE.match(class_name)
        if not match:
            raise SystemExit(f"cannot parse python client class name {class_name!r}")
        group, version, go_name = match.groups()
        version = version.lower()
        candidates = [
            prefix
            for prefix in [META, *GO_PACKAGES.values()]
            if prefix.endswith("." + version) and f"{prefix}.{go_name}" in self.go_fields
        ]
        if group:
            candidates = [c for c in candidates if f".{group.lower()}." in c] or candidates
        if not candidates:
            raise _Unresolvable(class_name)
        # The first candidate wins: meta/v1, then core/v1, then the others in GO_PACKAGES order.
        name = f"{candidates[0]}.{go_name}"
        self.names[class_name] = name
        return name

    def add_class(self, class_name: str) -> str:
        name = self.definition_name(class_name)
        if name in self.definitions:
            return name
        cls = getattr(self.client, class_name)
        schema: dict = {"type": "object"}
        description = _class_description(cls)
        if description:
            schema = {"description": description, "type": "object"}
        self.definitions[name] = schema
        go = self.go_fields.get(name, {})
        patch = self.patch.get(name, {})
        properties: dict[str, dict] = {}
        required: list[str] = []
        for attr, py_type in cls.openapi_types.items():
            json_name = cls.attribute_map[attr]
            field = cls.model_fields.get(attr)
            try:
                prop = self.property_schema(py_type, go.get(json_name, {}).get("go", ""))
            except _Unresolvable as exc:
                # An alpha/beta type of a newer client than the API level we serve: leave it out.
                self.skipped.append(f"{name}.{json_name} ({exc})")
                continue
            if "$ref" in prop:
                prop = {"allOf": [prop]}
            description = (field.description if field is not None else None) or go.get(json_name, {}).get("doc")
            if description:
                # the python client drops descriptions of object-typed fields; the Go doc has them
                prop = {"description": description, **prop}
            if json_name in patch:
                strategy, merge_key = patch[json_name]
                if merge_key:
                    prop["x-kubernetes-patch-merge-key"] = merge_key
                prop["x-kubernetes-patch-strategy"] = strategy
            properties[json_name] = prop
            if field is not None and field.is_required():
                required.append(json_name)
        schema["properties"] = dict(sorted(properties.items()))
        if required:
            schema["required"] = sorted(required)
        return name

    def property_schema(self, py_type: str, go_type: str) -> dict:
        go_base = go_type.lstrip("*[]").split(".")[-1]
        if py_type.startswith(("List[", "list[")):
            item_go = go_type[2:] if go_type.startswith("[]") else ""
            return {"type": "array", "items": self.item_schema(py_type[5:-1], item_go)}
        if py_type.startswith(("Dict[", "dict(")):
            value_type = py_type[len("Dict[str, ") : -1]
            value_go = go_type.split("]", 1)[1] if go_type.startswith("map[") else ""
            if go_base == "ResourceList" or "Quantity" in go_type:
                value_go = "resource.Quantity"
            return {"type": "object", "additionalProperties": self.item_schema(value_type, value_go)}
        return self.scalar_or_ref(py_type, go_type)

    def item_schema(self, py_type: str, go_type: str) -> dict:
        schema = self.property_schema(py_type, go_type)
        if "$ref" in schema:
            return {"allOf": [schema], "default": {}}
        return schema

    def scalar_or_ref(self, py_type: str, go_type: str) -> dict:
        go_base = go_type.lstrip("*[]").split(".")[-1]
        special = {
            "Time": f"{META}.Time",
            "MicroTime": f"{META}.MicroTime",
            "IntOrString": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            "Quantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
            "FieldsV1": f"{META}.FieldsV1",
            "RawExtension": "io.k8s.apimachinery.pkg.runtime.RawExtension",
        }
        if go_base in special:
            self.definitions.setdefault(special[go_base], SPECIAL[special[go_base]])
            return {"$ref": f"#/components/schemas/{special[go_base]}"}
        if py_type == "str":
            return {"type": "string"}
        if py_type == "bytes":
            return {"type": "string", "format": "byte"}
        if py_type == "bool":
            return {"type": "boolean"}
        if py_type == "int":
            return {"type": "integer", "format": "int64" if "int64" in go_type else "int32"}
        if py_type == "float":
            return {"type": "number", "format": "double"}
        if py_type == "datetime":
            name = f"{META}.Time"
            self.definitions.setdefault(name, SPECIAL[name])
            return {"$ref": f"#/components/schemas/{name}"}
        if py_type == "object":
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"$ref": f"#/components/schemas/{self.add_class(py_type)}"}

    def add_kind(self, group: str, version: str, kind: str, class_name: str, *, is_list: bool) -> None:
        name = self.add_class(class_name)
        gvks = self.definitions[name].setdefault("x-kubernetes-group-version-kind", [])
        entry = {"group": group, "kind": kind, "version": version}
        if entry not in gvks:
            gvks.append(entry)


def _class_description(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.split("\n\n")[0].strip() if doc and not doc.startswith("NOTE") else ""


def build(go_fields: dict) -> dict[str, dict]:
    builder = _Builder(go_fields)
    for group, version, kind, class_name in KINDS:
        builder.add_kind(group, version, kind, class_name, is_list=False)
        if kind not in NO_LIST:
            list_class = class_name + "List"
            builder.add_kind(group, version, kind + "List", list_class, is_list=True)
    groups = sorted({(g, v) for g, v, _, _ in KINDS})
    for class_name in META_CLASSES:
        kind = class_name[2:]
        for group, version in groups:
            builder.add_kind(group, version, kind, class_name, is_list=False)
    builder.definitions[f"{META}.Patch"] = SPECIAL[f"{META}.Patch"]
    for skipped in builder.skipped:
        print(f"skipped field {skipped}", file=sys.stderr)
    return dict(sorted(builder.definitions.items()))


def main(argv: list[str]) -> int:
    if argv[:1] == ["extract-go"] and len(argv) == 3:
        go_fields = extract_go(Path(argv[1]), Path(argv[2]))
        GO_FIELDS.write_text(json.dumps(go_fields, indent=0, sort_keys=True) + "\n")
        _print_patch_table(go_fields)
        return 0
    if argv[:1] == ["build"]:
        definitions = build(json.loads(GO_FIELDS.read_text()))
        DEFINITIONS.write_text(json.dumps(definitions, indent=1, sort_keys=True) + "\n")
        print(f"{len(definitions)} definitions -> {DEFINITIONS}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
