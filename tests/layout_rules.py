"""Read the package's source to find who writes job status and who imports whom.

Used by ``tests/test_layout.py``; also runnable on any checkout to count the places that write
``status`` (``python -m tests.layout_rules [ROOT]``).
"""

import ast
import re
import sys
from pathlib import Path

#: SQL that sets a job's status: ``SET status = …`` or ``, status = 'X'`` in an UPDATE.
_SQL_WRITE = re.compile(r"(\bSET\s+status\s*=|,\s*status\s*=\s*'[A-Z]+')", re.IGNORECASE)


def modules(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "migrations" not in p.parts)


def status_writes(path: Path) -> list[tuple[int, str]]:
    """Lines of ``path`` that write a job's status: an ORM update or save naming ``status``,
    an assignment to ``<object>.status`` of a model, or SQL that sets it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            keywords = {k.arg for k in node.keywords}
            if name in {"update", "update_or_create", "create"} and "status" in keywords:
                found.append((node.lineno, f".{name}(status=…)"))
            if name in {"save", "bulk_update"} and _names_status(node):
                found.append((node.lineno, f".{name}(… 'status' …)"))
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Attribute) and leaf.attr == "status":
                        found.append((node.lineno, "<job>.status = …"))
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value == "status":
                    found.append((node.lineno, "{'status': …} (update values)"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "UPDATE" in node.value.upper() or "SET" in node.value.upper():
                if _SQL_WRITE.search(node.value):
                    found.append((node.lineno, "SQL sets status"))
    return found


def _names_status(call: ast.Call) -> bool:
    for node in ast.walk(call):
        if isinstance(node, ast.Constant) and node.value == "status":
            return True
    return False


def imported_modules(path: Path) -> set[str]:
    """Every ``django_jobs…`` module ``path`` imports (at any depth of the file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "django_jobs":
                found.update(f"django_jobs.{alias.name}" for alias in node.names)
            elif node.module.startswith("django_jobs."):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("django_jobs"))
    return found


def count_writers(package: Path) -> dict[str, int]:
    return {
        str(path.relative_to(package.parent)): len(writes)
        for path in modules(package)
        if (writes := status_writes(path))
    }


if __name__ == "__main__":  # pragma: no cover
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    counts = count_writers(root / "django_jobs")
    for name, n in counts.items():
        print(f"{n:3} {name}")
    print(f"{sum(counts.values()):3} sites in {len(counts)} modules")
