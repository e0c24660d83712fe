import subprocess
import sys


def test_engine_and_store_import_without_the_web_stack():
    code = (
        "import sys; import app.engine, model_store; "
        "bad = [m for m in ('fastapi', 'starlette', 'pydantic') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
