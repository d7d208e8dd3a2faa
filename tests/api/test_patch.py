"""Patches as Kubernetes applies them: RFC 7386, RFC 6902 and strategic merge patch.

The strategic-merge cases come in two sets:
- ``SMP_FIXTURES``: the apply-side oracle of apimachinery's own ``strategicpatch`` tests
  (``strategicMergePatchRawTestCases`` and ``customStrategicMergePatchRawTestCases``): for each
  case, the live object, the patch kubectl's two/three-way diff produces, and the object
  kube-apiserver stores, re-expressed here as data against the same test schema ``MERGE_ITEM``.
  (Kubernetes keeps a ``null`` field in one case; we decode like a typed object, so nulls vanish.)
- kubectl-shaped patches against our real kinds (Deployment, Pod, Service, Scale...).
"""

from __future__ import annotations

import copy
import json

import pytest

from clusterctl.api.patch import (
    PatchError,
    UnsupportedPatch,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    strategic_merge,
)

# ---------------------------------------------------------------------------- RFC 7386

# RFC 7386 Appendix A, every example (target, patch, result); wrapped in {"a": ...} where the
# RFC's target or result is not an object, since our API only patches objects.
MERGE_PATCH_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"x": ["a", "b"]}, {"x": ["c", "d"]}, {"x": ["c", "d"]}),
    ({"x": {"a": "b"}}, {"x": ["c"]}, {"x": ["c"]}),
    ({"x": {"a": "foo"}}, {"x": None}, {}),
    ({"x": {"a": "foo"}}, {"x": "bar"}, {"x": "bar"}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({"x": [1, 2]}, {"x": {"a": "b", "c": None}}, {"x": {"a": "b"}}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), MERGE_PATCH_CASES)
def test_merge_patch_rfc7386_examples(target, patch, expected):
    before = copy.deepcopy(target)
    assert apply_merge_patch(target, patch) == expected
    assert target == before, "the input object must not be mutated"


def test_merge_patch_rejects_a_non_object_patch():
    with pytest.raises(PatchError, match="JSON object"):
        apply_merge_patch({"a": 1}, ["not", "an", "object"])


# ---------------------------------------------------------------------------- RFC 6902

# RFC 6902 Appendix A (A.1-A.16), as (document, ops, result or error substring).
JSON_PATCH_CASES = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}], {"foo": ["all", "cows", "eat", "grass"]}),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "test failed"),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}], {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "does not exist"),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "test failed"),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    # and the edges Kubernetes clients hit
    ({"a/b": 1}, [{"op": "replace", "path": "/a~1b", "value": 2}], {"a/b": 2}),
    ({"a": [1, 2]}, [{"op": "copy", "from": "/a/0", "path": "/a/-"}], {"a": [1, 2, 1]}),
    ({"a": 1}, [{"op": "replace", "path": "/missing", "value": 2}], "does not exist"),
    ({"a": 1}, [{"op": "remove", "path": "/missing"}], "does not exist"),
    ({"a": [1]}, [{"op": "add", "path": "/a/5", "value": 2}], "out of bounds"),
    ({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 2}], "invalid array index"),
    ({"a": 1}, [{"op": "frobnicate", "path": "/a"}], "unknown op"),
    ({"a": 1}, [{"op": "add", "path": "a", "value": 2}], "must start with '/'"),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": True}], "test failed"),
    ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "own child"),
]


@pytest.mark.parametrize(("doc", "ops", "expected"), JSON_PATCH_CASES)
def test_json_patch_rfc6902_examples(doc, ops, expected):
    before = copy.deepcopy(doc)
    if isinstance(expected, str):
        with pytest.raises(PatchError, match=expected):
            apply_json_patch(doc, ops)
    else:
        assert apply_json_patch(doc, ops) == expected
    assert doc == before, "the input object must not be mutated"


def test_json_patch_error_names_the_operation_and_path():
    with pytest.raises(PatchError) as info:
        apply_json_patch({"spec": {}}, [{"op": "add", "path": "/spec/replicas", "value": 3},
                                        {"op": "remove", "path": "/spec/template"}])
    assert "operation 1" in str(info.value) and "/spec/template" in str(info.value)


# ---------------------------------------------------------------------------- SMP oracle

# apimachinery's test schema (testdata/swagger-merge-item-v3.json), trimmed to what matters.
_ITEM = {"allOf": [{"$ref": "#/components/schemas/mergeItem"}], "default": {}}
MERGE_ITEM = {
    "mergeItem": {
        "properties": {
            "name": {"type": "string"},
            "value": {"type": "string"},
            "other": {"type": "string"},
            "mergingList": {"type": "array", "items": _ITEM,
                            "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
            "nonMergingList": {"type": "array", "items": {"$ref": "#/components/schemas/mergeItem"}},
            "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
            "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
            "mergeItemPtr": {"allOf": [{"$ref": "#/components/schemas/mergeItem"}],
                             "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
            "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
            "replacingItem": {"allOf": [{"$ref": "#/components/schemas/RawExtension"}],
                              "x-kubernetes-patch-strategy": "replace"},
            "retainKeysMap": {"allOf": [{"$ref": "#/components/schemas/retainKeysMergeItem"}],
                              "x-kubernetes-patch-strategy": "retainKeys"},
            "retainKeysMergingList": {"type": "array", "items": {"$ref": "#/components/schemas/mergeItem"},
                                      "x-kubernetes-patch-merge-key": "name",
                                      "x-kubernetes-patch-strategy": "merge,retainKeys"},
        },
    },
    "retainKeysMergeItem": {
        "properties": {
            "name": {"type": "string"},
            "value": {"type": "string"},
            "other": {"type": "string"},
            "simpleMap": {"items": {"type": "string"}},
            "mergingList": {"type": "array", "items": {"$ref": "#/components/schemas/mergeItem"},
                            "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
            "nonMergingList": {"type": "array", "items": {"$ref": "#/components/schemas/mergeItem"}},
            "mergingIntList": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-patch-strategy": "merge"},
        },
    },
    "RawExtension": {"properties": {"Raw": {"type": "string", "format": "byte"}}},
}

# (description, live object, patch, stored object or None, error substring or None)
SMP_FIXTURES = [
    ('nested patch merge with empty list',
     {"name": "hi", "mergingList": [{"name": "hello2"}]},
     {"$setElementOrder/mergingList": [{"name": "hello"}, {"name": "doesntexist"}], "mergingList": [{"name": "hello"}]},
     {"name": "hi", "mergingList": [{"name": "hello"}, {"name": "hello2"}]}, None),
    ('delete items in lists of scalars',
     {"mergingIntList": [1, 2, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}, None),
    ('delete all duplicate items in lists of scalars',
     {"mergingIntList": [1, 2, 3, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}, None),
    ('add and delete items in lists of scalars',
     {"mergingIntList": [1, 2, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2, 4], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}, None),
    ('merge lists of maps',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}], "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}, None),
    ('add field to map in merging list',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "mergingList": [{"name": 1, "value": 1}]},
     {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, None),
    ('add duplicate field to map in merging list',
     {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {},
     {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, None),
    ('add an item that already exists in current object in merging list',
     {"mergingList": [{"name": 1, "value": "a", "other": "x"}, {"name": 2}, {"name": 3}]},
     {},
     {"mergingList": [{"name": 1, "value": "a", "other": "x"}, {"name": 2}, {"name": 3}]}, None),
    ('replace map field value in merging list',
     {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "mergingList": [{"name": 1, "value": "a"}]},
     {"mergingList": [{"name": 1, "value": "a", "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, None),
    ('delete map from merging list',
     {"mergingList": [{"name": 1}, {"name": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 2}], "mergingList": [{"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "other": "b"}]}, None),
    ('delete missing map from merging list',
     {"mergingList": [{"name": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 2}], "mergingList": [{"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "other": "b"}]}, None),
    ('add map and delete map from merging list',
     {"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]},
     {"$setElementOrder/mergingList": [{"name": 2}, {"name": 3}], "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}, None),
    ('delete field from map in merging list',
     {"mergingList": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "mergingList": [{"name": 1, "value": None}]},
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, None),
    ('delete missing field from map in merging list',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "mergingList": [{"name": 1, "value": None}]},
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, None),
    ('replace non merging list nested in merging list',
     {"mergingList": [{"name": 1, "other": "a", "nonMergingList": [{"name": 1}, {"name": 2, "value": 2}]}, {"name": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "mergingList": [{"name": 1, "nonMergingList": [{"name": 1, "value": 1}]}]},
     {"mergingList": [{"name": 1, "other": "a", "nonMergingList": [{"name": 1, "value": 1}]}, {"name": 2, "other": "b"}]}, None),
    ('add field to map in merging list nested in merging list',
     {"mergingList": [{"name": 1, "other": "a", "mergingList": [{"name": 1}, {"name": 2, "value": 2}]}, {"name": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "mergingList": [{"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}], "name": 1, "mergingList": [{"name": 1, "value": 1}]}]},
     {"mergingList": [{"name": 1, "other": "a", "mergingList": [{"name": 1, "value": 1}, {"name": 2, "value": 2}]}, {"name": 2, "other": "b"}]}, None),
    ('add map to merging list by pointer',
     {"mergeItemPtr": [{"name": 1, "other": "a"}, {"name": 3}]},
     {"$setElementOrder/mergeItemPtr": [{"name": 1}, {"name": 2}], "mergeItemPtr": [{"name": 2}]},
     {"mergeItemPtr": [{"name": 1, "other": "a"}, {"name": 2}, {"name": 3}]}, None),
    ('add field to map in merging list by pointer',
     {"mergeItemPtr": [{"name": 1, "other": "a", "mergeItemPtr": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, {"name": 2, "other": "b"}]},
     {"$setElementOrder/mergeItemPtr": [{"name": 1}, {"name": 2}], "mergeItemPtr": [{"$setElementOrder/mergeItemPtr": [{"name": 1}, {"name": 2}], "name": 1, "mergeItemPtr": [{"name": 1, "value": 1}]}]},
     {"mergeItemPtr": [{"name": 1, "other": "a", "mergeItemPtr": [{"name": 1, "value": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, {"name": 2, "other": "b"}]}, None),
    ('merge lists of scalars',
     {"mergingIntList": [1, 2, 4]},
     {"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3]},
     {"mergingIntList": [1, 2, 3, 4]}, None),
    ('add duplicate field to map in merging int list',
     {"mergingIntList": [1, 2, 3]},
     {},
     {"mergingIntList": [1, 2, 3]}, None),
    ('add an item in a list of primitives and preserve order',
     {"mergingIntList": [1, 4, 2]},
     {"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]},
     {"mergingIntList": [3, 1, 4, 2]}, None),
    ('delete an item in a list of primitives and preserve order',
     {"mergingIntList": [1, 2, 3]},
     {"$setElementOrder/mergingIntList": [2, 1], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [2, 1]}, None),
    ('add an item in a list and preserve order',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 3}, {"name": 1}, {"name": 2}], "mergingList": [{"name": 3, "value": 3}]},
     {"mergingList": [{"name": 3, "value": 3}, {"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]}, None),
    ('add multiple items in a list and preserve order',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 4}, {"name": 2}, {"name": 3}], "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]},
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 4, "value": 4}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}, None),
    ('delete an item in a list and preserve order',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]},
     {"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}], "mergingList": [{"name": 3, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "value": 2, "other": "b"}, {"name": 1, "other": "a"}]}, None),
    ('change an item in a list and preserve order',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]},
     {"$setElementOrder/mergingList": [{"name": 2}, {"name": 3}, {"name": 1}], "mergingList": [{"name": 3, "value": "x"}]},
     {"mergingList": [{"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": "x"}, {"name": 1, "other": "a"}]}, None),
    ('add and delete an item in a list and preserve order',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]},
     {"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 1}], "mergingList": [{"name": 4, "value": 4}, {"name": 3, "$patch": "delete"}]},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 2, "value": 2, "other": "b"}, {"name": 1, "other": "a"}]}, None),
    ('set elements order in a list',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 3}, {"name": 4, "value": 4}, {"name": 2, "value": 2}]},
     {"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1}]},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 2, "value": 2}, {"name": 3, "value": 3}, {"name": 1, "other": "a"}]}, None),
    ('set elements order in a list with server-only items',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 3}, {"name": 4, "value": 4}, {"name": 2, "value": 2}, {"name": 9}]},
     {"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1}]},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 2, "value": 2}, {"name": 3, "value": 3}, {"name": 1, "other": "a"}, {"name": 9}]}, None),
    ('set elements order in a list with server-only items 2',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 9}, {"name": 3, "value": 3}, {"name": 4, "value": 4}]},
     {"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}]},
     {"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 9}, {"name": 4, "value": 4}, {"name": 3, "value": 3}]}, None),
    ('set elements order in a list with server-only items 3',
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 7}, {"name": 9}, {"name": 8}, {"name": 3, "value": 3}, {"name": 4, "value": 4}]},
     {"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}]},
     {"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 7}, {"name": 9}, {"name": 8}, {"name": 4, "value": 4}, {"name": 3, "value": 3}]}, None),
    ('add an item in a int list and preserve order',
     {"mergingIntList": [1, 2]},
     {"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]},
     {"mergingIntList": [3, 1, 2]}, None),
    ('add multiple items in a int list and preserve order',
     {"mergingIntList": [1, 2]},
     {"$setElementOrder/mergingIntList": [1, 4, 2, 3], "mergingIntList": [4, 3]},
     {"mergingIntList": [1, 4, 2, 3]}, None),
    ('delete an item in a int list and preserve order',
     {"mergingIntList": [1, 2, 3]},
     {"$setElementOrder/mergingIntList": [2, 1], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [2, 1]}, None),
    ('add and delete an item in a int list and preserve order',
     {"mergingIntList": [1, 2, 3]},
     {"$setElementOrder/mergingIntList": [4, 2, 1], "mergingIntList": [4], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [4, 2, 1]}, None),
    ('set elements order in a int list',
     {"mergingIntList": [1, 3, 4, 2]},
     {"$setElementOrder/mergingIntList": [4, 2, 3, 1]},
     {"mergingIntList": [4, 2, 3, 1]}, None),
    ('set elements order in a int list with server-only items',
     {"mergingIntList": [1, 3, 4, 2, 9]},
     {"$setElementOrder/mergingIntList": [4, 2, 3, 1]},
     {"mergingIntList": [4, 2, 3, 1, 9]}, None),
    ('set elements order in a int list with server-only items 2',
     {"mergingIntList": [1, 2, 9, 3, 4]},
     {"$setElementOrder/mergingIntList": [2, 1, 4, 3]},
     {"mergingIntList": [2, 1, 9, 4, 3]}, None),
    ('set elements order in a int list with server-only items 3',
     {"mergingIntList": [1, 2, 3, 2, 4]},
     {"$setElementOrder/mergingIntList": [2, 1, 4, 3, 2]},
     {"mergingIntList": [2, 2, 1, 4, 3]}, None),
    ('retainKeys map should clear defaulted field',
     {"retainKeysMap": {"value": "foo"}},
     {"retainKeysMap": {"$retainKeys": ["other"], "other": "bar"}},
     {"retainKeysMap": {"other": "bar"}}, None),
    ('retainKeys map adds a field',
     {"retainKeysMap": {"name": "foo"}},
     {"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "bar"}},
     {"retainKeysMap": {"name": "foo", "value": "bar"}}, None),
    ('retainKeys map adds a field and clear a field',
     {"retainKeysMap": {"name": "foo", "other": "a"}},
     {"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "bar"}},
     {"retainKeysMap": {"name": "foo", "value": "bar"}}, None),
    ('retainKeys map deletes a field',
     {"retainKeysMap": {"name": "foo", "value": "bar"}},
     {"retainKeysMap": {"$retainKeys": ["name"], "value": None}},
     {"retainKeysMap": {"name": "foo"}}, None),
    ('retainKeys map deletes a field and clears a field',
     {"retainKeysMap": {"name": "foo", "value": "bar", "other": "a"}},
     {"retainKeysMap": {"$retainKeys": ["name"], "value": None}},
     {"retainKeysMap": {"name": "foo"}}, None),
    ('retainKeys map clears a field',
     {"retainKeysMap": {"name": "foo", "value": "bar", "other": "a"}},
     {"retainKeysMap": {"$retainKeys": ["name", "value"]}},
     {"retainKeysMap": {"name": "foo", "value": "bar"}}, None),
    ('retainKeys map nested map with no change',
     {"retainKeysMap": {"name": "foo", "simpleMap": {"key1": "a"}}},
     {"retainKeysMap": {"$retainKeys": ["name", "simpleMap", "value"], "value": "bar"}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a"}}}, None),
    ('retainKeys map adds a field in a nested map',
     {"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key3": "c"}}},
     {"retainKeysMap": {"$retainKeys": ["name", "simpleMap", "value"], "simpleMap": {"key2": "b"}}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key2": "b", "key3": "c"}}}, None),
    ('retainKeys map deletes a field in a nested map',
     {"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key2": "b", "key3": "c"}}},
     {"retainKeysMap": {"$retainKeys": ["name", "simpleMap", "value"], "simpleMap": {"key2": None}}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key3": "c"}}}, None),
    ('retainKeys map changes a field in a nested map',
     {"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "a", "key2": "b", "key3": "c"}}},
     {"retainKeysMap": {"$retainKeys": ["name", "simpleMap", "value"], "simpleMap": {"key1": "x"}}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "simpleMap": {"key1": "x", "key2": "b", "key3": "c"}}}, None),
    ('retainKeys map replaces non-merging list',
     {"retainKeysMap": {"name": "foo", "value": "bar", "nonMergingList": [{"name": "a"}, {"name": "b"}]}},
     {"retainKeysMap": {"$retainKeys": ["name", "nonMergingList", "value"], "nonMergingList": [{"name": "a"}, {"name": "c"}, {"name": "b"}]}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "nonMergingList": [{"name": "a"}, {"name": "c"}, {"name": "b"}]}}, None),
    ('retainKeys map nested non-merging list with no change',
     {"retainKeysMap": {"name": "foo", "nonMergingList": [{"name": "a"}, {"name": "b"}]}},
     {"retainKeysMap": {"$retainKeys": ["name", "nonMergingList", "value"], "value": "bar"}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "nonMergingList": [{"name": "a"}, {"name": "b"}]}}, None),
    ('retainKeys map deletes nested non-merging list',
     {"retainKeysMap": {"name": "foo", "nonMergingList": [{"name": "a"}, {"name": "b"}]}},
     {"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "bar", "nonMergingList": None}},
     {"retainKeysMap": {"name": "foo", "value": "bar"}}, None),
    ('retainKeys map nested merging int list with no change',
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3]}},
     {"retainKeysMap": {"$retainKeys": ["mergingIntList", "name", "value"], "$setElementOrder/mergingIntList": [1, 2], "value": "bar"}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "mergingIntList": [1, 2, 3]}}, None),
    ('retainKeys map adds an item in nested merging int list',
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3]}},
     {"retainKeysMap": {"$setElementOrder/mergingIntList": [1, 2, 4], "$retainKeys": ["mergingIntList", "name"], "mergingIntList": [4]}},
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 4, 3]}}, None),
    ('retainKeys map deletes an item in nested merging int list',
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3, 4]}},
     {"retainKeysMap": {"$retainKeys": ["mergingIntList", "name"], "$deleteFromPrimitiveList/mergingIntList": [2], "$setElementOrder/mergingIntList": [1, 3]}},
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 3, 4]}}, None),
    ('retainKeys map adds an item and deletes an item in nested merging int list',
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3, 4]}},
     {"retainKeysMap": {"$retainKeys": ["mergingIntList", "name"], "mergingIntList": [5], "$deleteFromPrimitiveList/mergingIntList": [2], "$setElementOrder/mergingIntList": [1, 3, 5]}},
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 3, 5, 4]}}, None),
    ('retainKeys map deletes nested merging int list',
     {"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3]}},
     {"retainKeysMap": {"$retainKeys": ["name"], "mergingIntList": None}},
     {"retainKeysMap": {"name": "foo"}}, None),
    ('retainKeys map nested merging list with no change',
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}},
     {"retainKeysMap": {"$retainKeys": ["mergingList", "name", "value"], "$setElementOrder/mergingList": [{"name": "a"}, {"name": "b"}], "value": "bar"}},
     {"retainKeysMap": {"name": "foo", "value": "bar", "mergingList": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}, None),
    ('retainKeys map adds an item in nested merging list',
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "b"}, {"name": "x"}]}},
     {"retainKeysMap": {"$retainKeys": ["mergingList", "name"], "$setElementOrder/mergingList": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "mergingList": [{"name": "c"}]}},
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "x"}]}}, None),
    ('retainKeys map changes an item in nested merging list',
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "b", "value": "foo"}, {"name": "x"}]}},
     {"retainKeysMap": {"$retainKeys": ["mergingList", "name"], "$setElementOrder/mergingList": [{"name": "a"}, {"name": "b"}], "mergingList": [{"name": "b", "value": "bar"}]}},
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "b", "value": "bar"}, {"name": "x"}]}}, None),
    ('retainKeys map deletes nested merging list',
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "b"}]}},
     {"retainKeysMap": {"$retainKeys": ["name", "value"], "value": "bar", "mergingList": None}},
     {"retainKeysMap": {"name": "foo", "value": "bar"}}, None),
    ('retainKeys map deletes an item in nested merging list',
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "b"}, {"name": "x"}]}},
     {"retainKeysMap": {"$retainKeys": ["mergingList", "name"], "$setElementOrder/mergingList": [{"name": "a"}], "mergingList": [{"name": "b", "$patch": "delete"}]}},
     {"retainKeysMap": {"name": "foo", "mergingList": [{"name": "a"}, {"name": "x"}]}}, None),
    ('retainKeys list of maps clears a field',
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a", "other": "x"}]},
     {"$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}], "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo"}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}, None),
    ('retainKeys list of maps changes a field and clear a field',
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "old", "other": "x"}]},
     {"$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}], "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo", "value": "new"}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "new"}]}, None),
    ('retainKeys list of maps adds a field',
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]},
     {"$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}], "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo", "value": "a"}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}, None),
    ('retainKeys list of maps adds a field and clear a field',
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "other": "x"}]},
     {"$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}], "retainKeysMergingList": [{"$retainKeys": ["name", "value"], "name": "foo", "value": "a"}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]}, None),
    ('retainKeys list of maps deletes a field',
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]},
     {"$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}], "retainKeysMergingList": [{"$retainKeys": ["name"], "name": "foo", "value": None}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}, None),
    ('retainKeys list of maps deletes a field and clear a field',
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a", "other": "x"}]},
     {"$setElementOrder/retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}], "retainKeysMergingList": [{"$retainKeys": ["name"], "name": "foo", "value": None}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}, None),
    ('delete and reorder in one list, reorder in another',
     {"mergingList": [{"name": "a", "value": "a"}, {"name": "b", "value": "b"}], "mergeItemPtr": [{"name": "c", "value": "c"}, {"name": "d", "value": "d"}]},
     {"$setElementOrder/mergingList": [{"name": "b"}], "$setElementOrder/mergeItemPtr": [{"name": "d"}, {"name": "c"}], "mergingList": [{"$patch": "delete", "name": "a"}]},
     {"mergingList": [{"name": "b", "value": "b"}], "mergeItemPtr": [{"name": "d", "value": "d"}, {"name": "c", "value": "c"}]}, None),
    ('$setElementOrder contains item that is not present in the list to be merged',
     {"mergingList": [{"name": 1}, {"name": 3}]},
     {"$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}], "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
     {"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}, None),
    ('$setElementOrder contains item that is not present in the int list to be merged',
     {"mergingIntList": [1, 3]},
     {"$setElementOrder/mergingIntList": [3, 2, 1]},
     {"mergingIntList": [3, 1]}, None),
    ('should check if order in $setElementOrder and patch list match',
     {"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]},
     {"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}], "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
     None, "doesn't match"),
    ('missing merge key should error out',
     {"mergingList": [{"name": 1, "value": "a"}]},
     {"mergingList": [{"value": "b"}]},
     None, 'does not contain declared merge key'),
    ('$deleteFromPrimitiveList of nonexistent item in primitive list should not add the item to the list',
     {"mergingIntList": [1, 2]},
     {"$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2]}, None),
    ('$deleteFromPrimitiveList on empty primitive list should not add the item to the list',
     {"mergingIntList": None},
     {"$deleteFromPrimitiveList/mergingIntList": [3]},
     {}, None),
    ('$deleteFromPrimitiveList on nonexistent primitive list should not add the primitive list',
     {"foo": ["bar"]},
     {"$deleteFromPrimitiveList/mergingIntList": [3]},
     {"foo": ["bar"]}, None),
    ('$deleteFromPrimitiveList should delete item from a list with merge patch strategy',
     {"mergingIntList": [1, 2, 3]},
     {"$deleteFromPrimitiveList/mergingIntList": [2]},
     {"mergingIntList": [1, 3]}, None),
    ('$deleteFromPrimitiveList should delete item from a list without merge patch strategy',
     {"nonMergingIntList": [1, 2, 3]},
     {"$deleteFromPrimitiveList/nonMergingIntList": [2]},
     {"nonMergingIntList": [1, 3]}, None),
]

@pytest.mark.parametrize(
    ("description", "live", "patch", "expected", "error"), SMP_FIXTURES, ids=[c[0] for c in SMP_FIXTURES]
)
def test_strategic_merge_matches_apimachinery(description, live, patch, expected, error):
    before = copy.deepcopy(live), copy.deepcopy(patch)
    if error:
        with pytest.raises(PatchError, match=error):
            strategic_merge(live, patch, schema_name="mergeItem", defs=MERGE_ITEM)
    else:
        result = strategic_merge(live, patch, schema_name="mergeItem", defs=MERGE_ITEM)
        # Kubernetes compares the marshalled JSON: list order matters, key order does not.
        assert json.dumps(result, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert (live, patch) == before, "inputs must not be mutated"


def test_oracle_is_large_enough():
    assert len(SMP_FIXTURES) >= 25
    directives = ("$setElementOrder", "$retainKeys", "$deleteFromPrimitiveList", "$patch")
    for directive in directives:
        assert any(directive in json.dumps(c[2]) for c in SMP_FIXTURES), directive


# ---------------------------------------------------------------------------- SMP, real kinds


def _deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "finalizers": ["example.com/a", "example.com/b"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o1", "uid": "u1"}],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25",
                            "args": ["-g", "daemon off;"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        },
                        {"name": "sidecar", "image": "busybox:1.36"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                },
            },
        },
        "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]},
    }


def _deploy_patch(obj, patch):
    return apply_strategic_merge_patch(obj, patch, group="apps", version="v1", kind="Deployment")


def _containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


def test_kubectl_apply_changing_image_and_dropping_an_env_var():
    # What kubectl apply sends after editing the manifest: image changed, env B removed.
    patch = {
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "image": "nginx:1.26",
                "name": "nginx",
            }],
        }}},
    }
    live = _deployment()
    result = _deploy_patch(live, patch)
    nginx, sidecar = _containers(result)
    assert nginx["image"] == "nginx:1.26"
    assert nginx["env"] == [{"name": "A", "value": "1"}]
    assert nginx["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert sidecar == {"name": "sidecar", "image": "busybox:1.36"}
    assert "$setElementOrder/env" not in json.dumps(result)
    assert _containers(live)[0]["image"] == "nginx:1.25", "input must not be mutated"


def test_kubectl_apply_replacing_a_container_keeps_kube_apiserver_order():
    # sidecar removed, "log" added. kube-apiserver orders "log" after the server-only container:
    # it deletes in place and appends into the freed slot of the live list, then interleaves
    # by that list (see patch._merge_list_tracking).
    live = _deployment()
    _containers(live).append({"name": "server-only", "image": "x"})
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "log"}],
        "containers": [{"name": "log", "image": "busybox"}, {"$patch": "delete", "name": "sidecar"}],
    }}}}
    names = [c["name"] for c in _containers(_deploy_patch(live, patch))]
    assert names == ["nginx", "server-only", "log"]


def test_container_ports_merge_by_container_port_and_mounts_by_mount_path():
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "nginx",
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": True}, {"mountPath": "/cache", "name": "c"}],
    }]}}}}
    nginx = _containers(_deploy_patch(_deployment(), patch))[0]
    assert nginx["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]
    assert nginx["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"mountPath": "/cache", "name": "c"},
    ]


def test_atomic_lists_are_replaced_whole():
    patch = {"spec": {"template": {"spec": {
        "tolerations": [{"key": "b", "operator": "Exists"}],
        "containers": [{"name": "nginx", "args": ["-v"], "envFrom": [{"configMapRef": {"name": "cm"}}]}],
    }}}}
    result = _deploy_patch(_deployment(), patch)
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert _containers(result)[0]["args"] == ["-v"]
    assert _containers(result)[0]["envFrom"] == [{"configMapRef": {"name": "cm"}}]


def test_retain_keys_switches_the_deployment_strategy():
    # kubectl apply after changing strategy to Recreate and dropping rollingUpdate.
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}
    assert _deploy_patch(_deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_switches_a_volume_source():
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}],
    }}}}
    volumes = _deploy_patch(_deployment(), patch)["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "configMap": {"name": "cfg"}}]


def test_retain_keys_rejects_a_patch_field_outside_the_list():
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}
    with pytest.raises(PatchError, match="rollingUpdate"):
        _deploy_patch(_deployment(), patch)


def test_metadata_finalizers_merge_as_a_set_and_delete_from_primitive_list():
    patch = {"metadata": {
        "finalizers": ["example.com/c", "example.com/a"],
        "$deleteFromPrimitiveList/finalizers": ["example.com/b"],
        "labels": {"tier": None, "env": "prod"},
        "ownerReferences": [{"uid": "u1", "controller": True}, {"apiVersion": "v1", "kind": "Y", "name": "o2", "uid": "u2"}],
    }}
    meta = _deploy_patch(_deployment(), patch)["metadata"]
    assert sorted(meta["finalizers"]) == ["example.com/a", "example.com/c"]
    assert meta["labels"] == {"app": "web", "env": "prod"}
    assert [o["uid"] for o in meta["ownerReferences"]] == ["u1", "u2"]
    assert meta["ownerReferences"][0]["controller"] is True


def test_patch_replace_directive_on_a_list_and_on_a_map():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}},
                      "selector": {"$patch": "replace", "matchLabels": {"app": "w2"}}}}
    result = _deploy_patch(_deployment(), patch)
    assert _containers(result) == [{"name": "only", "image": "x"}]
    assert result["spec"]["selector"] == {"matchLabels": {"app": "w2"}}


def test_patch_delete_directive_on_a_map():
    result = _deploy_patch(_deployment(), {"spec": {"strategy": {"$patch": "delete"}}})
    assert result["spec"]["strategy"] == {}


def test_status_conditions_merge_by_type():
    patch = {"status": {"conditions": [{"type": "Progressing", "status": "True"},
                                       {"type": "Available", "status": "False"}]}}
    conditions = _deploy_patch(_deployment(), patch)["status"]["conditions"]
    assert conditions == [{"type": "Progressing", "status": "True"}, {"type": "Available", "status": "False"}]


def test_service_ports_merge_by_port():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}], "selector": {"app": "a"}}}
    patch = {"spec": {"ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "targetPort": "https"}],
                      "selector": {"app": None, "name": "b"}}}
    result = apply_strategic_merge_patch(svc, patch, group="", version="v1", kind="Service")
    assert result["spec"]["ports"] == [
        {"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
        {"port": 443, "targetPort": "https"},
    ]
    assert result["spec"]["selector"] == {"name": "b"}


def test_scale_subresource_patch_from_the_python_client():
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
             "spec": {"replicas": 2}, "status": {"replicas": 2, "selector": "app=web"}}
    result = apply_strategic_merge_patch(scale, {"spec": {"replicas": 5}}, group="autoscaling", version="v1", kind="Scale")
    assert result["spec"] == {"replicas": 5} and result["status"]["replicas"] == 2


def test_pod_host_aliases_merge_by_ip_and_image_pull_secrets_by_name():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i"}],
                    "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
                    "imagePullSecrets": [{"name": "r1"}]}}
    patch = {"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}, {"ip": "10.0.0.2", "hostnames": ["c"]}],
                      "imagePullSecrets": [{"name": "r2"}]}}
    spec = apply_strategic_merge_patch(pod, patch, group="", version="v1", kind="Pod")["spec"]
    assert spec["hostAliases"] == [{"ip": "10.0.0.1", "hostnames": ["b"]}, {"ip": "10.0.0.2", "hostnames": ["c"]}]
    # without $setElementOrder, items new to the live list come first (as in kube-apiserver)
    assert spec["imagePullSecrets"] == [{"name": "r2"}, {"name": "r1"}]


def test_merging_list_item_without_merge_key_is_an_error_naming_the_field():
    with pytest.raises(PatchError, match=r"containers.*merge key 'name'"):
        _deploy_patch(_deployment(), {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})


def test_unknown_map_directive_is_rejected():
    with pytest.raises(PatchError, match="unknown patch type"):
        _deploy_patch(_deployment(), {"spec": {"strategy": {"$patch": "frobnicate"}}})


def test_strategic_merge_for_a_kind_without_schema_is_unsupported():
    with pytest.raises(UnsupportedPatch, match="Widget"):
        apply_strategic_merge_patch({}, {}, group="example.com", version="v1", kind="Widget")


def test_null_and_unknown_fields_follow_typed_decoding():
    result = _deploy_patch(_deployment(), {"spec": {"paused": None, "revisionHistoryLimit": 3, "extra": {"x": None}}})
    assert result["spec"]["revisionHistoryLimit"] == 3
    assert result["spec"]["extra"] == {}
    assert "paused" not in result["spec"]


def test_container_ports_collapse_on_container_port_as_in_kubernetes():
    # kubernetes/kubernetes#39188: the merge key is containerPort alone, so a UDP twin of a TCP
    # port merges into it. kubectl computes its patches assuming exactly this.
    live = _deployment()
    _containers(live)[0]["ports"] = [{"containerPort": 53, "protocol": "TCP"}]
    patch = {"spec": {"template": {"spec": {"containers": [{
        "name": "nginx", "ports": [{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}],
    }]}}}}
    assert _containers(_deploy_patch(live, patch))[0]["ports"] == [{"containerPort": 53, "protocol": "UDP"}]


def test_absurdly_deep_input_is_a_patch_error_not_a_crash():
    import gc

    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    # garbage left by earlier tests (an unclosed session's __del__ warning) must not be collected
    # at the bottom of this deep stack, where pytest's unraisable hook itself hits the limit
    gc.collect()
    gc.disable()
    try:
        for apply in (lambda: apply_merge_patch({}, deep),
                      lambda: apply_json_patch({}, [{"op": "add", "path": "/x", "value": deep}]),
                      lambda: _deploy_patch(_deployment(), {"spec": deep})):
            with pytest.raises(PatchError, match="too deeply"):
                apply()
    finally:
        gc.enable()


def test_random_patches_only_ever_raise_patch_error():
    """Broken patches must become 4xx answers: nothing but PatchError may escape."""
    import random

    rnd = random.Random(20261126)
    keys = ["spec", "template", "containers", "name", "image", "env", "ports", "containerPort", "metadata",
            "labels", "finalizers", "$patch", "$retainKeys", "$setElementOrder/containers", "$setElementOrder/env",
            "$deleteFromPrimitiveList/finalizers", "$setElementOrder", "strategy", "volumes", "conditions"]
    values = ["delete", "replace", "merge", "x", 1, 1.5, True, None, "nginx", 80]

    def gen(depth=0):
        r = rnd.random()
        if depth > 4 or r < 0.3:
            return rnd.choice(values)
        if r < 0.65:
            return {rnd.choice(keys): gen(depth + 1) for _ in range(rnd.randint(0, 4))}
        return [gen(depth + 1) for _ in range(rnd.randint(0, 3))]

    for _ in range(1500):
        containers = [gen(2) if rnd.random() < 0.3 else {"name": rnd.choice(["nginx", "sidecar", "new"]),
                                                          rnd.choice(keys): gen(3)} for _ in range(rnd.randint(0, 3))]
        patch = {"spec": {"template": {"spec": {"containers": containers, rnd.choice(keys): gen(3)}}},
                 "metadata": gen(1), rnd.choice(keys): gen(1)}
        ops = [{"op": rnd.choice(["add", "remove", "replace", "move", "copy", "test", "x"]),
                "path": rnd.choice(["", "/spec", "/spec/replicas", "/spec/template/spec/containers/-", "/a/b", 5]),
                "from": rnd.choice(["/spec", "/metadata", "/nope", None]), "value": gen(3)}
               for _ in range(rnd.randint(0, 3))]
        for attempt in (lambda: _deploy_patch(_deployment(), patch),
                        lambda: apply_json_patch(_deployment(), ops),
                        lambda: apply_merge_patch(_deployment(), gen())):
            try:
                attempt()
            except PatchError:
                pass


def test_patch_field_validation_sees_what_the_patch_touches(control_plane):
    """Merge/strategic patches are field-validated on the fields they name (the rest is the stored
    object): Strict rejects an unknown field in them, Warn/Ignore drop it — top level included."""
    cp = control_plane
    cp.request("POST", "/api/v1/namespaces/default/configmaps", body={"metadata": {"name": "fv"}, "data": {"a": "1"}})
    path = "/api/v1/namespaces/default/configmaps/fv"
    merge = "application/merge-patch+json"
    r = cp.request("PATCH", path + "?fieldValidation=Strict", body={"data": {"b": "2"}, "bogus": 1}, content_type=merge)
    assert r.status == 400 and 'unknown field "bogus"' in r.json()["message"]
    r = cp.request("PATCH", path + "?fieldValidation=Strict", body={"metadata": {"lables": {"x": "y"}}},
                   content_type="application/strategic-merge-patch+json")
    assert r.status == 400 and 'unknown field "metadata.lables"' in r.json()["message"]
    r = cp.request("PATCH", path + "?fieldValidation=Warn", body={"data": {"b": "2"}, "bogus": 1}, content_type=merge)
    assert r.status == 200 and 'unknown field "bogus"' in str(r.headers.get("Warning"))
    got = cp.request("GET", path).json()
    assert got["data"] == {"a": "1", "b": "2"} and "bogus" not in got
    r = cp.request("PATCH", path, body={"data": {"c": 3}}, content_type=merge)
    assert r.status in (400, 422)  # a wrong type in a touched field is still caught
