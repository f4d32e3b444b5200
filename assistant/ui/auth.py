"""Staff authentication: named bcrypt accounts, login throttling and the audit log.

* :class:`StaffAccounts` holds ``{user: bcrypt hash}`` from ``settings.staff_accounts_file``
  (TOML or JSON) plus, when ``staff_password`` is set, ``staff_user`` hashed in memory.
* :class:`LoginThrottle` counts failed logins per user AND per client address; after
  ``failures`` failures a key is locked for ``base_s`` seconds, doubling with every further
  failure up to ``cap_s``. Thread-safe; the clock is injectable (tests never sleep).
* :func:`audit` appends one JSON line to ``<data_dir>/audit.jsonl`` (the file the staff
  console writes); :func:`client_ref` is the pseudonymous client id recorded there.

Passwords are never logged, audited or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.errors import AuthError, StorageError

#: Allowed staff user names (also keeps the TOML writer trivial).
USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: bcrypt work factor of new hashes.
BCRYPT_ROUNDS = 12
#: bcrypt only reads the first 72 bytes; longer passwords are refused, not truncated.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_CHARS = 8

_AUDIT_LOCK = threading.Lock()


def hash_password(password: str, *, rounds: int = BCRYPT_ROUNDS) -> str:
    """bcrypt hash (``$2b$...``, 60 ASCII chars) of ``password``.

    Raises:
        AuthError: the password is empty or longer than :data:`MAX_PASSWORD_BYTES` bytes.
    """
    import bcrypt

    raw = (password or "").encode()
    if not raw:
        raise AuthError("empty password")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise AuthError(f"password longer than {MAX_PASSWORD_BYTES} bytes (bcrypt limit)")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=rounds)).decode("ascii")


def _check_hash(password: str, hashed: bytes) -> bool:
    import bcrypt

    raw = (password or "").encode()
    if not raw or len(raw) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(raw, hashed)
    except ValueError:  # malformed hash
        return False


def load_accounts_file(path: Path) -> dict[str, str]:
    """``{user: bcrypt hash}`` from a TOML (default) or ``.json`` file.

    Returns:
        The accounts; ``{}`` when the file does not exist.

    Raises:
        AuthError: unreadable or malformed file, a bad user name or a value that is
            not a bcrypt hash (the message names the file and the user).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuthError(f"{path}: cannot read staff accounts ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise AuthError(f"{path}: expected a table of user = bcrypt hash")
    accounts: dict[str, str] = {}
    for user, hashed in data.items():
        if not USER_RE.fullmatch(str(user)):
            raise AuthError(f"{path}: bad user name {str(user)[:64]!r}")
        if not isinstance(hashed, str) or not re.fullmatch(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", hashed):
            raise AuthError(f"{path}: user {user!r}: value is not a bcrypt hash")
        accounts[str(user)] = hashed
    return accounts


def write_accounts_file(path: Path, accounts: dict[str, str]) -> None:
    """Write ``accounts`` atomically (mode 0600) as TOML, or JSON for a ``.json`` path.

    Raises:
        StorageError: the file cannot be written (disk full, permissions).
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(accounts, indent=2, sort_keys=True) + "\n"
    else:
        text = "# staff accounts: user = bcrypt hash (assistant staff add-user NAME)\n" + "".join(
            f'"{user}" = "{hashed}"\n' for user, hashed in sorted(accounts.items())
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write staff accounts ({exc.strerror})") from None


def add_account(path: Path, user: str, password: str, *, rounds: int = BCRYPT_ROUNDS) -> bool:
    """Add or replace ``user`` in the accounts file at ``path``.

    Returns:
        True when the user was new, False when an existing hash was replaced.

    Raises:
        AuthError: bad user name, password too short/long, malformed existing file.
        StorageError: the file cannot be written.
    """
    if not USER_RE.fullmatch(user or ""):
        raise AuthError("user name must be 1-64 letters, digits or . _ @ -")
    if len(password or "") < MIN_PASSWORD_CHARS:
        raise AuthError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    accounts = load_accounts_file(path)
    new = user not in accounts
    accounts[user] = hash_password(password, rounds=rounds)
    write_accounts_file(path, accounts)
    return new


class StaffAccounts:
    """Named staff accounts with bcrypt hashes.

    Args:
        hashes: ``{user: bcrypt hash}``.
    """

    def __init__(self, hashes: dict[str, str | bytes]) -> None:
        self._hashes = {u: h.encode("ascii") if isinstance(h, str) else h for u, h in hashes.items()}
        self._dummy = hash_password(secrets.token_urlsafe(16), rounds=4).encode("ascii")

    @classmethod
    def from_settings(cls, settings: Any) -> StaffAccounts:
        """Accounts of ``settings.resolved_staff_accounts_file`` plus ``staff_user`` /
        ``staff_password`` (hashed in memory; a file entry of the same name wins).

        Raises:
            AuthError: malformed accounts file or a ``staff_password`` over 72 bytes.
        """
        hashes: dict[str, str | bytes] = {}
        if settings.staff_password is not None:
            hashes[settings.staff_user] = hash_password(settings.staff_password.get_secret_value())
        hashes.update(load_accounts_file(settings.resolved_staff_accounts_file))
        return cls(hashes)

    def __bool__(self) -> bool:
        return bool(self._hashes)

    @property
    def users(self) -> list[str]:
        """The account names, sorted."""
        return sorted(self._hashes)

    def verify(self, user: str, password: str) -> bool:
        """True if ``password`` matches ``user``'s hash. An unknown user costs one bcrypt
        check against a dummy hash too, so timing does not reveal which users exist."""
        hashed = self._hashes.get(user or "")
        if hashed is None:
            _check_hash(password, self._dummy)
            return False
        return _check_hash(password, hashed)


class LoginThrottle:
    """Per-key failed-login counter with exponential lockout; thread-safe.

    Keys are ``("user", name)`` and ``("client", address)``. A key with ``n >= failures``
    recorded failures is locked until ``last_failure + min(base_s * 2**(n - failures), cap_s)``.
    :meth:`begin_attempt` checks and counts in one step; a success clears the user's
    key and takes back the provisional client failure. Entries idle for ``forget_s`` are dropped;
    at most ``max_keys`` keys are kept (oldest dropped first).

    Args:
        failures: failures before the first lockout (>= 1).
        base_s: first lockout in seconds.
        cap_s: longest lockout in seconds.
        forget_s: idle seconds after which a key's failures are forgotten (default 24 h).
        clock: monotonic clock in seconds (tests pass a fake).
    """

    def __init__(self, *, failures: int = 5, base_s: float = 30.0, cap_s: float = 900.0,
                 forget_s: float = 86_400.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = max(1, failures)
        self.base_s = base_s
        self.cap_s = cap_s
        self.forget_s = forget_s
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> LoginThrottle:
        """Throttle with the ``staff_lockout_*`` settings."""
        return cls(failures=settings.staff_lockout_failures, base_s=settings.staff_lockout_seconds,
                   cap_s=settings.staff_lockout_max_seconds, **kwargs)

    def _keys_for(self, user: str, client: str) -> list[tuple[str, str]]:
        return [("user", (user or "")[:64]), ("client", client or "unknown")]

    def _lock_s(self, count: int) -> float:
        if count < self.failures:
            return 0.0
        return min(self.base_s * 2 ** min(count - self.failures, 30), self.cap_s)

    def _get(self, key: tuple[str, str], now: float) -> tuple[int, float]:
        count, last = self._keys.get(key, (0, 0.0))
        if count and now - last > self.forget_s:
            self._keys.pop(key, None)
            return 0, 0.0
        return count, last

    def retry_after(self, user: str, client: str) -> float:
        """Seconds until ``user`` may try again from ``client`` (0.0: not locked)."""
        now = self.clock()
        with self._lock:
            wait = 0.0
            for key in self._keys_for(user, client):
                count, last = self._get(key, now)
                wait = max(wait, last + self._lock_s(count) - now)
            return max(0.0, wait)

    def begin_attempt(self, user: str, client: str) -> float:
        """Atomically start one login attempt.

        Returns:
            Seconds the caller must wait when either key is locked (nothing is counted
            then), else 0.0 after counting the attempt as a failure for both keys; call
            :meth:`record_success` when the password turns out right. Counting first
            means parallel attempts cannot slip past the limit.
        """
        now = self.clock()
        with self._lock:
            keys = self._keys_for(user, client)
            wait = 0.0
            for key in keys:
                count, last = self._get(key, now)
                wait = max(wait, last + self._lock_s(count) - now)
            if wait > 0:
                return wait
            for key in keys:
                count, _ = self._get(key, now)
                self._keys[key] = (count + 1, now)
                self._keys.move_to_end(key)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
            return 0.0

    def record_failure(self, user: str, client: str) -> float:
        """Count one failed login for both keys (no lock check); returns the lockout seconds."""
        now = self.clock()
        with self._lock:
            for key in self._keys_for(user, client):
                count, _ = self._get(key, now)
                self._keys[key] = (count + 1, now)
                self._keys.move_to_end(key)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        return self.retry_after(user, client)

    def record_success(self, user: str, client: str) -> None:
        """After :meth:`begin_attempt` with the right password: clear the user's count
        and take back the client's provisional failure (its earlier failures stay, so a
        client that knows one password cannot reset its counter for guessing others)."""
        now = self.clock()
        with self._lock:
            user_key, client_key = self._keys_for(user, client)
            self._keys.pop(user_key, None)
            count, last = self._get(client_key, now)
            if count > 1:
                self._keys[client_key] = (count - 1, last)
            else:
                self._keys.pop(client_key, None)

    def reset(self) -> None:
        """Forget every count (an administrator's unlock)."""
        with self._lock:
            self._keys.clear()

    def lockout_seconds(self, user: str, client: str) -> float:
        """Current lockout of ``user``/``client`` right after a failure (0.0: none)."""
        return self.retry_after(user, client)


def _audit_key(data_dir: Path) -> bytes:
    """Per-installation secret for :func:`client_ref` (``<data_dir>/audit.key``, 0600)."""
    path = Path(data_dir) / "audit.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    except FileExistsError:
        return path.read_bytes()
    except OSError:
        return key  # read-only data dir: refs are stable for this process only


def client_ref(data_dir: Path, client: str) -> str:
    """Pseudonymous, stable id (16 hex chars) of a client address for the audit log."""
    return hmac.new(_audit_key(data_dir), (client or "unknown").encode(), hashlib.sha256).hexdigest()[:16]


def audit(data_dir: Path, entry: dict[str, Any]) -> None:
    """Append ``{"at": ISO time, **entry}`` as one JSON line to ``<data_dir>/audit.jsonl``,
    and to the database's ``audit_log`` table when one is attached (several workers on
    PostgreSQL): :func:`assistant.hospital.audit.append_audit`.

    Raises:
        StorageError: the audit log cannot be written (a staff action must not proceed
            unaudited).
    """
    from assistant.hospital.audit import append_audit

    append_audit(data_dir, entry)
