"""An import-linter contract type the built-in ones lack: an allow-list.

`lint-imports` loads it (pyproject.toml, [tool.importlinter] contract_types) from the checkout,
which it puts on sys.path. A forbidden contract names what may not be imported, so a module
that is new (a new dependency, a new layer) passes unseen; this one names what may be.
"""

from __future__ import annotations

import sys
from typing import Any

from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils
from importlinter.domain.helpers import module_expressions_to_modules


class AllowlistContract(Contract):
    """Each source module (and its submodules) imports only the standard library, itself, and
    the allowed modules (and their submodules). Direct imports are checked: what an allowed
    module imports in turn is its own contract's business.

    Options: source_modules (wildcards allowed, e.g. `*.domain`), allowed_modules,
    ignore_imports (as in import-linter's own contracts). The top-level configuration needs
    include_external_packages = true, so that third-party imports are in the graph to be
    refused.
    """

    type_name = "allowlist"

    source_modules = fields.ListField(subfield=fields.ModuleExpressionField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField())
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        """Returns the contract's result, listing each import outside the allow-list."""
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=contract_utils.AlertLevel.ERROR,
        )
        expressions = self.source_modules
        sources = module_expressions_to_modules(graph, expressions)  # type: ignore[arg-type]
        allowed = [module.name for module in self.allowed_modules]  # type: ignore[attr-defined]
        refused = []
        for source in sorted(module.name for module in sources):
            for importer in sorted({source} | graph.find_descendants(source)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if not _allowed(imported, [source, *allowed]):
                        details = graph.get_import_details(importer=importer, imported=imported)
                        lines = sorted({detail["line_number"] for detail in details})
                        refused.append((importer, imported, lines))
        return ContractCheck(
            kept=not refused,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"refused": refused},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        """Prints each refused import with its line numbers."""
        for importer, imported, lines in check.metadata["refused"]:
            numbers = ", ".join(f"l.{line}" for line in lines)
            output.print_error(f"{importer} is not allowed to import {imported} ({numbers})")
        output.new_line()


def _allowed(imported: str, allowed: list[str]) -> bool:
    """Returns whether `imported` is standard library, or one of `allowed` or inside one."""
    if imported.split(".")[0] in sys.stdlib_module_names:
        return True
    return any(imported == name or imported.startswith(name + ".") for name in allowed)
