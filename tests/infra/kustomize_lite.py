"""A small, strict kustomize renderer for the subset infra/k8s uses; the fallback when no kubectl.

The tests prefer the real thing (``kubectl kustomize``, found on PATH, beside the venv's python, or
in ``$LUSYNTH_KUBECTL``) and, when it is there, check that this renderer gives the same objects.
Supported: ``resources`` (files and directories), ``namespace``, ``labels`` (metadata only),
``images``, ``patches`` (strategic-merge files whose maps merge and whose lists of named items merge
by name) and ``configMapGenerator`` (``files``/``literals`` with ``disableNameSuffixHash``). Any other
field raises :class:`KustomizeLiteError`, so a kustomization that outgrows the subset fails loudly
instead of rendering something kustomize would not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches", "configMapGenerator", "generatorOptions"}
)
# kinds that kustomize's namespace transformer leaves without a namespace
CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass",
     "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ClusterServingRuntime"}
)
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class KustomizeLiteError(ValueError):
    """The kustomization uses something outside the supported subset, or is malformed."""


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise KustomizeLiteError(f"{directory}: no kustomization.yaml; a resource directory must be a kustomization")


def _load_objects(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            raise KustomizeLiteError(f"{path}: every document must be a Kubernetes object with kind and metadata")
    return docs


def _split_image(image: str) -> tuple[str, str]:
    """``repo/name:tag`` -> (``repo/name``, ``:tag``); digests and registry ports are kept apart."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _set_images(node: Any, images: list[dict[str, Any]]) -> None:
    """Rewrite ``image`` of every item of any ``containers``/``initContainers`` list, as kustomize does."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        container["image"] = _new_image(container["image"], images)
            _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def _new_image(image: str, images: list[dict[str, Any]]) -> str:
    name, suffix = _split_image(image)
    for rule in images:
        if rule.get("name") != name:
            continue
        unknown = set(rule) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise KustomizeLiteError(f"images entry {rule['name']!r}: unsupported field(s) {sorted(unknown)}")
        new_name = rule.get("newName", name)
        if "digest" in rule:
            return f"{new_name}@{rule['digest']}"
        if "newTag" in rule:
            return f"{new_name}:{rule['newTag']}"
        return new_name + suffix
    return image


def _merge(base: Any, patch: Any, where: str) -> Any:
    """Strategic merge for maps and for lists of named items; scalars and other lists are replaced."""
    if isinstance(patch, dict):
        if any(k.startswith("$") for k in patch):
            raise KustomizeLiteError(f"{where}: strategic-merge directives ({[k for k in patch if k.startswith('$')]}) are not supported")
        if not isinstance(base, dict):
            return copy.deepcopy(patch)
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)  # null deletes a field, as in kustomize
            else:
                out[key] = _merge(base.get(key), value, f"{where}.{key}")
        return out
    if isinstance(patch, list) and patch and all(isinstance(i, dict) for i in patch):
        if not all("name" in i for i in patch):
            raise KustomizeLiteError(f"{where}: list items without 'name' need kustomize's per-field merge keys; use kubectl kustomize")
        merged = [copy.deepcopy(i) for i in (base or [])]
        index = {i.get("name"): n for n, i in enumerate(merged)}
        for item in patch:
            if item["name"] in index:
                merged[index[item["name"]]] = _merge(merged[index[item["name"]]], item, f"{where}[{item['name']}]")
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _apply_patch(objects: list[dict[str, Any]], patch_path: Path, entry: dict[str, Any]) -> None:
    unknown = set(entry) - {"path"}
    if unknown:
        raise KustomizeLiteError(f"patches entry {entry}: only 'path' (a strategic-merge file) is supported, not {sorted(unknown)}")
    for patch in _load_objects(patch_path):
        meta = patch["metadata"]
        hits = [
            o for o in objects
            if o["kind"] == patch["kind"] and o["metadata"]["name"] == meta["name"]
            and ("namespace" not in meta or o["metadata"].get("namespace") == meta["namespace"])
        ]
        if len(hits) != 1:
            raise KustomizeLiteError(f"{patch_path}: patch for {patch['kind']}/{meta['name']} matches {len(hits)} objects, expected 1")
        merged = _merge(hits[0], patch, f"{patch_path.name}:{patch['kind']}/{meta['name']}")
        hits[0].clear()
        hits[0].update(merged)


def _generate_configmaps(directory: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    options = spec.get("generatorOptions") or {}
    if set(options) - {"disableNameSuffixHash"} or not options.get("disableNameSuffixHash"):
        raise KustomizeLiteError(f"{directory}: configMapGenerator needs generatorOptions.disableNameSuffixHash: true (hash suffixes are not reproduced)")
    out = []
    for gen in spec["configMapGenerator"]:
        unknown = set(gen) - {"name", "files", "literals"}
        if unknown:
            raise KustomizeLiteError(f"configMapGenerator {gen.get('name')!r}: unsupported field(s) {sorted(unknown)}")
        data: dict[str, str] = {}
        for item in gen.get("files", []):
            key, _, rel = item.partition("=") if "=" in item else (Path(item).name, "", item)
            data[key] = (directory / rel).read_text()
        for item in gen.get("literals", []):
            key, _, value = item.partition("=")
            data[key] = value
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    return out


def build(directory: str | Path) -> list[dict[str, Any]]:
    """Render the kustomization in ``directory`` to a list of objects (like ``kubectl kustomize``)."""
    directory = Path(directory)
    kfile = _kustomization_file(directory)
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeLiteError(f"{kfile}: unsupported field(s) {sorted(unknown)}; render with kubectl kustomize")

    objects: list[dict[str, Any]] = []
    for res in spec.get("resources", []):
        if "://" in res or res.startswith("github.com/"):
            raise KustomizeLiteError(f"{kfile}: remote resource {res!r} is not supported")
        path = (directory / res).resolve()
        objects.extend(build(path) if path.is_dir() else _load_objects(path))
    if "configMapGenerator" in spec:
        objects.extend(_generate_configmaps(directory, spec))
    elif "generatorOptions" in spec:
        raise KustomizeLiteError(f"{kfile}: generatorOptions without configMapGenerator")

    for entry in spec.get("patches", []):
        _apply_patch(objects, directory / entry["path"], entry)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for label in spec.get("labels", []):
        if set(label) - {"pairs", "includeSelectors", "includeTemplates"} or label.get("includeSelectors") or label.get("includeTemplates"):
            raise KustomizeLiteError(f"{kfile}: labels support only 'pairs' (includeSelectors/includeTemplates false)")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
    if spec.get("images"):
        for obj in objects:
            _set_images(obj, spec["images"])
    return objects
