#!/usr/bin/env python3
"""Fails when the modules under src/ depend on each other in a loop.

Reads the `crate::` and `super::` paths of every file under src/, builds the graph of top-level
modules and, within each directory, the graph of its submodules, and names every cycle it
finds (the shortest loop through each edge that closes one). Test code (`tests.rs` files and
`#[cfg(test)] mod … { … }` blocks) is left out: a test may borrow another module's fixtures
without making the library depend on it; `--with-tests` counts it too. It also checks that no command
module (`src/commands/*.rs`) imports another one.
Exit status: 0 when the graphs are acyclic, 1 otherwise.
"""

import re
import sys
from pathlib import Path

# Command modules that import a sibling, as (importer, imported): none. What two commands
# share lives in `commands/mod.rs` or below `commands/` (the pipeline's `Session`); keep it so.
KNOWN_COMMAND_IMPORTS = set()

# Dependencies that close a loop and are known, as (parent, importer, imported); the check
# ignores them and says so. Remove an entry once its loop is broken; add none lightly.
KNOWN_LOOP_EDGES = {
    # matrix/validate.rs reads a driver's ignore file (inputs::IgnoreRules) to check it, while
    # inputs hashes what the matrix names: matrix -> inputs -> matrix (and inputs -> lock ->
    # matrix, lock/why.rs). Breaking it means moving the ignore rules below matrix.
    ("crate", "matrix", "inputs"),
}

PATH = re.compile(r"\b(crate|super)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)(\{|[A-Za-z_][A-Za-z0-9_]*)")
COMMENT = re.compile(r"//[^\n]*")
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{")


def without_tests(text):
    """The text without its `#[cfg(test)] mod … { … }` blocks (braces counted naively, which
    holds for this code base: an unbalanced brace in a string would show as a false edge)."""
    while (m := TEST_MOD.search(text)) is not None:
        depth, end = 0, len(text)
        for i in range(m.end() - 1, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
        text = text[: m.start()] + text[end:]
    return text


def module_path(src, file):
    """The module path of a file: src/a/b.rs and src/a/b/mod.rs are both ["a", "b"]."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod" or parts == ["lib"] or parts == ["main"]:
        parts = parts[:-1]
    return parts


def braced(text, start):
    """The top-level names inside the `{…}` group that opens at `start`."""
    depth, names, word = 0, [], ""
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 2 and word.strip():
                names.append(word.strip().split("::")[0])
            word = ""
            continue
        if ch == "}":
            depth -= 1
            if depth == 0:
                break
            continue
        if depth == 1:
            if ch == ",":
                names.append(word.strip().split("::")[0])
                word = ""
            else:
                word += ch
    if word.strip():
        names.append(word.strip().split("::")[0])
    return [n.split(" ")[0] for n in names if n and n != "self"]


def references(text, here):
    """Absolute module paths (lists of names) that a file at module path `here` names."""
    text = COMMENT.sub("", text)
    for m in PATH.finditer(text):
        root, middle, last = m.group(1), m.group(2), m.group(3)
        base = [] if root == "crate" else here[:-1]
        prefix = base + [p for p in middle.split("::") if p]
        if last == "{":
            for name in braced(text, m.end() - 1):
                yield prefix + [name]
        else:
            yield prefix + [last]


def shortest_path(graph, start, goal):
    """The shortest path from `start` to `goal` (both included), or None."""
    paths, queue = {start: [start]}, [start]
    for node in queue:
        if node == goal:
            return paths[node]
        for nxt in sorted(graph.get(node, ())):
            if nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    return None


def cycles(graph):
    """For each edge that closes a loop, the shortest loop through it; each loop named once,
    starting from its smallest module."""
    found, seen = [], set()
    for node in sorted(graph):
        for nxt in sorted(graph[node]):
            back = shortest_path(graph, nxt, node)
            if back is None:
                continue
            loop = [node] + back[:-1]
            i = loop.index(min(loop))
            key = tuple(loop[i:] + loop[:i])
            if key not in seen:
                seen.add(key)
                found.append(list(key))
    return found


def main():
    args = sys.argv[1:]
    with_tests = "--with-tests" in args
    args = [a for a in args if a != "--with-tests"]
    src = Path(args[0] if args else "src")
    files = sorted(src.rglob("*.rs"))
    modules = {tuple(module_path(src, f)) for f in files}
    graphs = {}  # parent module path -> {child: {child}}
    command_imports = set()
    for f in files:
        here = module_path(src, f)
        if not here:
            continue  # lib.rs and main.rs are the roots: they name everything
        if not with_tests and here[-1] == "tests":
            continue
        text = COMMENT.sub("", f.read_text())
        if not with_tests:
            text = without_tests(text)
        for ref in references(text, here):
            # The longest prefix of the path that is a module of the crate.
            target = max(
                (ref[:n] for n in range(len(ref), 0, -1) if tuple(ref[:n]) in modules),
                key=len,
                default=None,
            )
            if target is None:
                continue
            common = 0
            while common < min(len(here), len(target)) and here[common] == target[common]:
                common += 1
            if common >= len(target) or common >= len(here):
                continue  # a module naming its own ancestor or descendant
            parent = "/".join(here[:common]) or "crate"
            graphs.setdefault(parent, {}).setdefault(here[common], set()).add(target[common])
            if here[0] == "commands" == target[0] and len(here) > 1 and len(target) > 1:
                if here[1] != target[1]:
                    command_imports.add((here[1], target[1]))

    failed = False
    for parent, importer, imported in sorted(KNOWN_LOOP_EDGES):
        children = graphs.get(parent, {})
        if imported not in children.get(importer, set()):
            print(f"note: known loop edge `{importer}` -> `{imported}` no longer exists; remove it")
            continue
        children[importer].discard(imported)
        print(f"note: known loop edge in `{parent}`: `{importer}` -> `{imported}` left out")
    for parent in sorted(graphs):
        for loop in cycles(graphs[parent]):
            failed = True
            print(f"module cycle in `{parent}`: {' -> '.join(loop + [loop[0]])}")
    for importer, imported in sorted(command_imports - KNOWN_COMMAND_IMPORTS):
        failed = True
        print(f"command `{importer}` imports command `{imported}`")
    for importer, imported in sorted(KNOWN_COMMAND_IMPORTS - command_imports):
        print(f"note: known exception `{importer}` -> `{imported}` no longer exists; remove it")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
