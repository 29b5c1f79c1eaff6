"""The two halves stay apart: model/ is headless, the UI never touches tensors."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=120)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_model_api_imports_no_ui_and_defers_torch():
    loaded = _modules_after("import model.api")
    assert not loaded & {"textual", "rich", "nnio_tui"}
    # torch loads on first use, so the app can draw before it is ready.
    assert "torch" not in loaded


def test_the_cli_starts_without_torch():
    assert "torch" not in _modules_after("import nnio_tui.cli")


def test_import_linter_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports")
    assert lint, "import-linter is part of the test extra"
    result = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
