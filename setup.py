"""Ship the top-level knowledge_base/ and prompts/ folders inside the wheel.

They stay at the top of the repository (an editable install reads them there); a wheel
carries copies as package data under ``assistant/_data/``, which
:mod:`assistant.paths` falls back to. Everything else is in ``pyproject.toml``.
"""

from setuptools import find_packages, setup

DATA = {"assistant._data.knowledge_base": "knowledge_base", "assistant._data.prompts": "prompts"}

setup(
    packages=[*find_packages(include=["assistant", "assistant.*"]), *DATA],
    package_dir={"": ".", **DATA},
    package_data={
        "assistant._data.knowledge_base": ["*.yaml", "*.csv", "*.json", "models/*/*"],
        "assistant._data.prompts": ["*.yaml"],
        # Alembic migrations of the hospital tables (not a package: no __init__.py)
        "assistant.hospital": ["migrations/*.py", "migrations/script.py.mako", "migrations/README",
                               "migrations/alembic.ini",
                               "migrations/versions/*.py"],
    },
    include_package_data=False,
)
