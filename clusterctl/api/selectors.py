"""Label and field selectors, parsed once and matched against plain object dicts.

Label selectors follow Kubernetes' string grammar (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x)``, ``a``, ``!a``, comma-separated = AND) and the structured ``LabelSelector``
(``matchLabels``/``matchExpressions``) that workloads and PDBs carry. Field selectors support
``=``/``==``/``!=`` on the fields Kubernetes indexes per kind (``metadata.name``,
``metadata.namespace``, ``spec.nodeName``, ``status.phase``, ``involvedObject.*``, ...);
asking for any other field is a 400, as in Kubernetes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from clusterctl.api.errors import ApiError, bad_request

Labels = dict


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str                       # = != in notin exists !exists
    values: tuple[str, ...] = ()

    def matches(self, labels: Labels) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        value = labels.get(self.key)
        if self.op == "=":
            return has and value == self.values[0]
        if self.op == "!=":
            return not has or value != self.values[0]
        if self.op == "in":
            return has and value in self.values
        if self.op == "notin":
            return not has or value not in self.values
        return False


class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    __slots__ = ("requirements",)

    def __init__(self, requirements: list[Requirement] | tuple[Requirement, ...] = ()):
        self.requirements = tuple(requirements)

    def matches(self, labels: Labels | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.op == "exists":
                parts.append(r.key)
            elif r.op == "!exists":
                parts.append("!" + r.key)
            elif r.op in ("=", "!="):
                parts.append(f"{r.key}{r.op}{r.values[0]}")
            else:
                parts.append(f"{r.key} {r.op} ({','.join(r.values)})")
        return ",".join(parts)


_KEY_RE = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_./]*")
_VALUE_RE = re.compile(r"[-A-Za-z0-9_.]*")


def _fail(text: str, why: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {why} in selector {text!r}")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form (``?labelSelector=``). Raises a 400 ApiError when malformed."""
    if not text or not text.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    i, n = 0, len(text)

    def skip_ws() -> None:
        nonlocal i
        while i < n and text[i] == " ":
            i += 1

    while True:
        skip_ws()
        negate = False
        if i < n and text[i] == "!":
            negate = True
            i += 1
            skip_ws()
        m = _KEY_RE.match(text, i)
        if not m:
            raise _fail(text, f"expected a label key at position {i}")
        key = m.group(0)
        i = m.end()
        skip_ws()
        if negate:
            reqs.append(Requirement(key, "!exists"))
        elif i >= n or text[i] == ",":
            reqs.append(Requirement(key, "exists"))
        elif text.startswith("==", i) or text.startswith("!=", i) or text[i] == "=":
            op = "!=" if text.startswith("!=", i) else "="
            i += 2 if text.startswith(("==", "!="), i) else 1
            skip_ws()
            vm = _VALUE_RE.match(text, i)
            value = vm.group(0) if vm else ""
            i = vm.end() if vm else i
            reqs.append(Requirement(key, op, (value,)))
        elif text.startswith("in", i) or text.startswith("notin", i):
            op = "notin" if text.startswith("notin", i) else "in"
            i += len(op)
            skip_ws()
            if i >= n or text[i] != "(":
                raise _fail(text, f"expected '(' after {op!r}")
            close = text.find(")", i)
            if close < 0:
                raise _fail(text, "missing ')'")
            values = tuple(v.strip() for v in text[i + 1:close].split(",") if v.strip())
            for value in values:
                if not _VALUE_RE.fullmatch(value):
                    raise _fail(text, f"invalid label value {value!r}")
            if not values:
                raise _fail(text, f"{op!r} needs at least one value")
            i = close + 1
            reqs.append(Requirement(key, op, values))
        else:
            raise _fail(text, f"unexpected {text[i]!r} at position {i}")
        skip_ws()
        if i >= n:
            break
        if text[i] != ",":
            raise _fail(text, f"expected ',' at position {i}")
        i += 1
    return LabelSelector(reqs)


_EXPR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def from_label_selector_object(selector: dict | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` dict. ``None`` matches nothing in Kubernetes' workload sense, so
    callers decide; here None and {} both give the empty (match-all) selector."""
    if not selector:
        return LabelSelector()
    reqs = [Requirement(str(k), "=", (str(v),)) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = _EXPR_OPS.get(expr.get("operator", ""))
        if op is None:
            raise ValueError(f"unknown selector operator {expr.get('operator')!r}")
        reqs.append(Requirement(str(expr.get("key", "")), op, tuple(str(v) for v in expr.get("values") or ())))
    return LabelSelector(reqs)


def selector_object_to_string(selector: dict | None) -> str:
    return str(from_label_selector_object(selector))


# --- field selectors ---------------------------------------------------------------------------

def field_value(obj: dict, path: tuple[str, ...]) -> str:
    """The value a field selector compares at ``path`` (as a string; "" when absent)."""
    return _get(obj, path)


def _get(obj: dict, path: tuple[str, ...]) -> str:
    cur: object = obj
    for part in path:
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
#: kind -> extra selectable fields (beyond metadata.name/namespace), as Kubernetes registers them.
FIELDS_BY_KIND: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "Secret": ("type",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
    "Service": ("spec.clusterIP", "spec.type"),
}
_SPECIAL_PATHS = {("Event", "source"): ("source", "component")}


FieldPredicate = Callable[[dict], bool]


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    path: tuple[str, ...]
    negate: bool
    value: str

    def matches(self, obj: dict) -> bool:
        return (_get(obj, self.path) == self.value) != self.negate


class FieldSelector:
    __slots__ = ("requirements",)

    def __init__(self, requirements: list[FieldRequirement] | tuple = ()):
        self.requirements = tuple(requirements)

    def matches(self, obj: dict) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def exact(self, field: str) -> str | None:
        """The value required by ``field=value`` if the selector has such a term (for scoping)."""
        for r in self.requirements:
            if r.field == field and not r.negate:
                return r.value
        return None


def parse_field_selector(text: str | None, kind: str) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    allowed = set(_COMMON_FIELDS) | set(FIELDS_BY_KIND.get(kind, ()))
    reqs = []
    for term in text.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            field, value = term.split("!=", 1)
            negate = True
        elif "==" in term:
            field, value = term.split("==", 1)
            negate = False
        elif "=" in term:
            field, value = term.split("=", 1)
            negate = False
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field = field.strip()
        if field not in allowed:
            raise bad_request(f'field label not supported: {field}')
        path = _SPECIAL_PATHS.get((kind, field), tuple(field.split(".")))
        reqs.append(FieldRequirement(field, path, negate, value.strip()))
    return FieldSelector(reqs)
