"""Layer-by-layer analysis of an image, and the bytes it ships in vain (like dive).

Why not ask overlay: the answer must come from what the layers *contain*, so it is
computed from the entries recorded while each layer tar was unpacked (path, type,
regular-file inode groups with their byte sizes, whiteouts, opaque dirs).

Definitions (also written into the JSON as ``definitions``):

- layer ``size``: bytes of regular-file content in the layer tar, each inode once
  (a hardlink adds no bytes).
- ``files_added`` / ``files_changed`` / ``files_removed``: paths (of any type) that
  the layer makes appear, replaces, or hides (by a whiteout, an opaque dir, or a
  non-directory put over a directory) relative to the merged view of the layers
  below.  A directory over a directory merges and is not counted.
- ``wasted_bytes`` of a layer: the size of each inode of that layer none of whose
  paths is visible in the final merged view (deleted or overwritten later, or
  replaced by a later entry of the same tar).
- ``total_bytes`` = sum of layer sizes; ``wasted_bytes`` = sum over layers;
  ``efficiency`` = (total_bytes - wasted_bytes) / total_bytes, 1.0 for an empty image.
"""

from __future__ import annotations

from typing import Any

DEFINITIONS = {
    "size": "regular-file content bytes in the layer tar, each inode once",
    "wasted_bytes": "bytes of regular files shipped in a layer but invisible in the final "
    "filesystem (deleted or overwritten by a later layer)",
    "efficiency": "(total_bytes - wasted_bytes) / total_bytes; 1.0 if total_bytes is 0",
}


class _View:
    """The merged filesystem view: path -> (layer index, entry), with a child index."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[int, dict[str, Any]]] = {}
        self.children: dict[str, set[str]] = {}

    def get(self, path: str) -> tuple[int, dict[str, Any]] | None:
        return self.items.get(path)

    def put(self, path: str, layer: int, entry: dict[str, Any]) -> None:
        if path not in self.items:
            parent = path.rpartition("/")[0]
            self.children.setdefault(parent, set()).add(path)
        self.items[path] = (layer, entry)

    def remove_below(self, path: str) -> int:
        """Remove everything strictly under ``path``; return how many paths went."""
        n = 0
        for child in list(self.children.pop(path, ())):
            n += self.remove_below(child)
            del self.items[child]
            n += 1
        return n

    def remove(self, path: str) -> int:
        """Remove ``path`` and its subtree; return how many paths went."""
        if path not in self.items:
            return 0
        n = self.remove_below(path) + 1
        del self.items[path]
        parent = path.rpartition("/")[0]
        kids = self.children.get(parent)
        if kids is not None:
            kids.discard(path)
        return n


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def analyze(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Analyze layer metas (bottom first, as recorded by unpack) into the inspect report."""
    view = _View()
    per_layer: list[dict[str, Any]] = []
    for li, meta in enumerate(layers):
        entries: dict[str, dict[str, Any]] = meta.get("entries", {})
        added = changed = removed = 0
        for d in meta.get("opaque", []):
            removed += view.remove_below(d)
        for p, e in entries.items():
            if e["type"] == "whiteout":
                removed += view.remove(p)
        for p in sorted(entries, key=lambda s: (s.count("/"), s)):
            e = entries[p]
            if e["type"] == "whiteout":
                continue
            for anc in _ancestors(p):
                prev = view.get(anc)
                if prev is None:
                    view.put(anc, li, {"type": "dir"})
                    added += 1
                elif prev[1]["type"] != "dir":
                    view.remove(anc)
                    view.put(anc, li, {"type": "dir"})
                    changed += 1
            prev = view.get(p)
            if prev is None:
                added += 1
            elif e["type"] == "dir" and prev[1]["type"] == "dir":
                pass
            else:
                changed += 1
                if prev[1]["type"] == "dir":
                    removed += view.remove_below(p)
            view.put(p, li, e)
        per_layer.append({"files_added": added, "files_changed": changed, "files_removed": removed})

    total = wasted = 0
    wasted_files: list[dict[str, Any]] = []
    for li, meta in enumerate(layers):
        groups: dict[str, int] = meta.get("groups", {})
        paths: dict[str, list[str]] = {g: [] for g in groups}
        for p, e in meta.get("entries", {}).items():
            g = e.get("group")
            if g is not None and g in paths:
                paths[g].append(p)
        layer_wasted = 0
        for g, size in groups.items():
            visible = any((v := view.get(p)) is not None and v[0] == li for p in paths[g])
            if not visible:
                layer_wasted += size
                if size:
                    p = sorted(paths[g])[0] if paths[g] else None
                    reason = (
                        "replaced in the same layer"
                        if p is None
                        else ("deleted" if view.get(p) is None else "overwritten")
                    )
                    wasted_files.append(
                        {
                            "path": "/" + p if p else None,
                            "layer": li,
                            "bytes": size,
                            "reason": reason,
                        }
                    )
        size = sum(groups.values())
        total += size
        wasted += layer_wasted
        per_layer[li].update(size=size, wasted_bytes=layer_wasted)
    wasted_files.sort(key=lambda w: (-w["bytes"], w["path"] or ""))
    return {
        "layers": per_layer,
        "total_bytes": total,
        "wasted_bytes": wasted,
        "efficiency": 1.0 if total == 0 else (total - wasted) / total,
        "wasted_files": wasted_files,
        "definitions": DEFINITIONS,
    }


def inspect_image(store: Any, name: str) -> dict[str, Any]:
    """The full inspect report of a stored image: record facts plus ``analyze``."""
    rec = store.get(name)
    metas = [store.layer_meta(lid) for lid in rec["layers"]]
    report = analyze(metas)
    for i, (lid, meta) in enumerate(zip(rec["layers"], metas, strict=True)):
        report["layers"][i] = {
            "index": i,
            "id": lid,
            "digest": meta.get("blob_digest"),
            "media_type": meta.get("media_type"),
            "compression": meta.get("compression"),
            "compressed_size": meta.get("blob_size"),
            "tar_bytes": meta.get("tar_bytes"),
            **report["layers"][i],
        }
    history = [h for h in rec["config"].get("history", []) if not h.get("empty_layer")]
    if len(history) == len(metas):
        for i, h in enumerate(history):
            report["layers"][i]["created_by"] = h.get("created_by")
    return {"name": rec["name"], "manifest_digest": rec["manifest_digest"], **report}


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def format_report(report: dict[str, Any], top: int = 10) -> str:
    """A human-readable rendering of an inspect report, for the CLI."""
    lines = [f"Image: {report['name']}  ({report['manifest_digest']})", ""]
    lines.append(
        f"{'#':>2}  {'size':>9}  {'wasted':>9}  {'added':>6}  {'changed':>7}  {'removed':>7}  layer"
    )
    for layer in report["layers"]:
        lines.append(
            f"{layer['index']:>2}  {_human(layer['size']):>9}  {_human(layer['wasted_bytes']):>9}  "
            f"{layer['files_added']:>6}  {layer['files_changed']:>7}  {layer['files_removed']:>7}  "
            f"{layer['id'][:19]}"
        )
    lines += [
        "",
        f"Total bytes:  {_human(report['total_bytes'])} ({report['total_bytes']})",
        f"Wasted bytes: {_human(report['wasted_bytes'])} ({report['wasted_bytes']})",
        f"Efficiency:   {report['efficiency'] * 100:.2f} %",
    ]
    if report["wasted_files"]:
        lines += ["", "Largest wasted files:"]
        for w in report["wasted_files"][:top]:
            lines.append(
                f"  {_human(w['bytes']):>9}  layer {w['layer']}  {w['reason']:<11}  {w['path']}"
            )
    return "\n".join(lines)
