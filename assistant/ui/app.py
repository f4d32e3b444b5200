"""The Gradio app: a patient chat tab and a staff console behind a login.

``build_app(settings)`` builds the Blocks (models and tables load once, here);
``launch(app, host, port)`` serves it. Sessions are isolated: each browser tab has its
own :class:`PatientSession` in ``gr.State`` (server-side), and nothing patient-specific
lives in module or app globals.
"""

from __future__ import annotations

import html
import logging
import sys
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from assistant.llm.base import ChatBackend
from assistant.service import PatientProfile, PatientSession, TriageService, client_key
from assistant.settings import Settings
from assistant.triage.render import md_escape

log = logging.getLogger(__name__)

NOTICE = {
    "en": "This assistant gives guidance, not a diagnosis. In an emergency call 120 (or 911).",
    "zh": "本助手提供就医指导，不做诊断。紧急情况请拨打120。",
}
BANNER_STYLE = {
    "em": "background:#b71c1c;color:#fff",
    "24": "background:#f9a825;color:#000",
    "ne": "background:#1565c0;color:#fff",
    "sc": "background:#2e7d32;color:#fff",
}
EMPTY_REPLY = {
    "en": "Please describe what is bothering you, for example: 'sore throat for two days'.",
    "zh": "请描述您哪里不舒服，例如：“嗓子疼两天了”。",
}
CHAT_CONCURRENCY = 16
"""Patient turns run at once (threads; the deterministic path is thread-safe and short)."""
LEAD_IN_CONCURRENCY = 8
"""Lead-in events at once; they mostly wait on the service's bounded generation queue,
which refuses work beyond one running and three waiting generations."""
QUEUE_SIZE = 256
"""Events waiting in Gradio's queue at most (then "queue full")."""
ERROR_REPLY = {
    "en": "Sorry, something went wrong on our side. Please ask a member of staff for help. "
          "If you feel very unwell, call 120 or go to the emergency department.",
    "zh": "抱歉，系统出现问题，请联系医院工作人员。如感觉非常不适，请拨打120或前往急诊。",
}


def banner_html(result: Any) -> str:
    """Coloured urgency banner (id ``urgency-banner``), shown above the reply."""
    from assistant.triage.render import urgency_line

    d = result.disposition
    key = "em" if d.is_emergency else "24" if d.value == "consultation_24" else \
        "sc" if d.value == "self_care" else "ne"
    return (
        f'<div id="urgency-banner" class="urgency-{d.value}" role="alert" '
        f'style="{BANNER_STYLE[key]};padding:12px;border-radius:8px;font-size:1.2em;font-weight:bold">'
        f"{html.escape(urgency_line(result))}</div>"
    )


def card_html(result: Any, booking: dict[str, Any] | None) -> str:
    """Department / doctor / booked-slot card (id ``department-card``)."""
    from assistant.triage.render import format_when

    if not result.departments:
        return ""
    zh = result.language == "zh"

    def label(d: Any) -> str:
        name = d.name_zh if zh else d.name_en
        return name if f"({d.code})" in name else f"{name} ({d.code})"

    d = result.departments[0]
    ed = None
    if result.disposition.is_emergency and d.code != "EMERG":
        # an emergency goes to the ED now (its doctors are the ones suggested); the
        # specialty that leads the ranking takes over afterwards
        from assistant.kb import default_kb

        ed = next((x for x in result.departments if x.code == "EMERG"), None) or default_kb().catalog.get("EMERG")
    rows = [f"<b>{'科室' if zh else 'Department'}:</b> {html.escape(label(ed or d))}"]
    if ed is not None:
        rows.append(f"<b>{'专科' if zh else 'Specialty'}:</b> {html.escape(label(d))}")
    if booking:
        doc = booking["doctor"]
        rows.append(f"<b>{'医生' if zh else 'Doctor'}:</b> {html.escape(doc['name_zh'] if zh else doc['name_en'])}"
                    f" · {html.escape(doc['title_zh'] if zh else doc['title_en'])}")
        rows.append(f"<b>{'已预约' if zh else 'Booked'}:</b> {format_when(booking['starts_at'], result.language)}"
                    f" · {'预约号' if zh else 'ref'} {html.escape(str(booking['ref']))}")
    elif result.doctors:
        doc = result.doctors[0]
        rows.append(f"<b>{'医生' if zh else 'Doctor'}:</b> {html.escape(doc.name_zh if zh else doc.name_en)}"
                    f" · {format_when(doc.starts_at, result.language)}")
    return ('<div id="department-card" style="border:1px solid #999;border-radius:8px;padding:10px">'
            + "<br>".join(rows) + "</div>")


def lead_in_md(text: str) -> str:
    """The checked lead-in as escaped Markdown (empty when there is none)."""
    return f"_{md_escape(text)}_" if text else ""


def citations_md(result: Any) -> str:
    if not result.citations:
        return ""
    from assistant.triage.render import safe_url

    return "\n".join(
        f"- [{md_escape(c.title)}]({safe_url(c.url)}) — {md_escape(c.source)}" if safe_url(c.url)
        else f"- {md_escape(c.title)} — {md_escape(c.source)}"
        for c in result.citations
    )


class PatientService:
    """The patient tab's handler over one :class:`~assistant.service.TriageService`."""

    def __init__(self, service: TriageService) -> None:
        self.service = service
        self.settings = service.settings

    def respond(
        self,
        message: Any,
        history: list[dict[str, Any]] | None,
        state: PatientSession | None,
        lang_choice: str,
        age: Any,
        sex: str | None,
        pregnant: bool,
        request: Any = None,
    ) -> Iterator[tuple[Any, ...]]:
        """One reply, answer first: yields (history, banner, card, questions, citations,
        state, textbox, lead-in).

        The deterministic answer (urgency banner, department/doctor card, questions, the
        full reply) goes out in one update as soon as it is computed; the lead-in place is
        cleared, and the model's lead-in streams there afterwards, in a separate event
        (:meth:`lead_in`), so it never delays the answer or holds a triage worker.

        Urgency advice, once computed, always reaches the patient: booking faults degrade
        inside the service, and only a fault in triage itself shows the generic "call 120
        if very unwell" reply.
        """
        state = state if isinstance(state, PatientSession) else PatientSession()
        history = list(history or [])
        text = message if isinstance(message, str) else str(message or "")
        lang = {"English": "en", "中文": "zh"}.get(lang_choice) or state.language
        if not text.strip():
            lang = lang or self.settings.default_language
            history.append({"role": "assistant", "content": EMPTY_REPLY[lang]})
            yield history, "", "", "", "", state, "", ""
            return
        history.append({"role": "user", "content": text[:2000] + (" …" if len(text) > 2000 else "")})
        try:
            profile = _profile(age, sex, pregnant, lang)
            address = getattr(getattr(request, "client", None), "host", None)
            turn = self.service.turn(state, text, profile, lead_in=False, client=client_key(address))
        except Exception:  # noqa: BLE001 - never a traceback in front of a patient
            log.error("patient turn failed in triage (session ref hidden)")
            history.append({"role": "assistant", "content": ERROR_REPLY[lang or "en"]})
            yield history, "", "", "", "", state, "", ""
            return
        result = turn.result
        questions = "\n".join(f"- {md_escape(q)}" for q in result.follow_up_questions)
        history.append({"role": "assistant", "content": turn.answer})
        yield (history, banner_html(result), card_html(result, turn.booking), questions, citations_md(result),
               state, "", "")

    @property
    def lead_in_on(self) -> bool:
        """Whether answers get a streamed model lead-in (a model marked capable, see
        :attr:`Settings.lead_in_enabled`, and a loaded model)."""
        return self.settings.lead_in_enabled and self.service.backend is not None

    def lead_in(self, state: PatientSession | None) -> Iterator[str]:
        """Stream the checked lead-in of the session's newest answer into its own place
        (Markdown, id ``lead-in``); yields nothing when there is none to write, the
        generation queue is full, or a newer message came in."""
        if not self.lead_in_on or not isinstance(state, PatientSession):
            return
        try:
            for text in self.service.stream_lead_in(state):
                yield lead_in_md(text)
        except Exception as exc:  # noqa: BLE001 - the lead-in is optional
            log.warning("lead-in failed: %s", type(exc).__name__)
            yield ""

    def confirm(self, state: PatientSession | None) -> tuple[str, PatientSession | None]:
        """Confirm the session's held slot; returns (status Markdown, state)."""
        if not isinstance(state, PatientSession) or not state.booking:
            return "No booking to confirm. 没有需要确认的预约。", state
        try:
            ok = self.service.confirm(state)
        except Exception as exc:  # noqa: BLE001 - never a traceback in front of a patient
            log.error("confirm failed: %s", type(exc).__name__)
            ok = False
        if ok:
            return "✅ Booking confirmed. 预约已确认。", state
        return ("The hold has lapsed or could not be confirmed; please ask again or call the hospital. "
                "保留已过期或无法确认，请重新咨询或致电医院。"), state


def _profile(age: Any, sex: Any, pregnant: Any, lang: str | None) -> PatientProfile:
    """The form's fields as a :class:`PatientProfile`; an invalid age (NaN, text, out of
    range) is dropped rather than trusted or echoed."""
    try:
        return PatientProfile(age=age, sex=sex, pregnant=pregnant, language=lang)
    except ValidationError:
        return PatientProfile(sex=sex if sex in ("F", "M") else None, pregnant=pregnant, language=lang)


def check_staff_login(settings: Settings, user: str, password: str) -> bool:
    """True if ``user``/``password`` match a staff account (bcrypt; see
    :class:`assistant.ui.auth.StaffAccounts`). No throttling or audit: the staff tab
    goes through :func:`staff_login` instead."""
    from assistant.ui.auth import StaffAccounts

    return StaffAccounts.from_settings(settings).verify(user, password)


def staff_login(settings: Settings, accounts: Any, throttle: Any, user: Any, password: Any,
                client: str) -> tuple[str | None, str]:
    """One throttled, audited staff login attempt.

    Args:
        settings: ``data_dir`` (audit log).
        accounts: :class:`~assistant.ui.auth.StaffAccounts`.
        throttle: :class:`~assistant.ui.auth.LoginThrottle`.
        user, password: as typed (anything; non-strings count as empty).
        client: the client address (``gr.Request.client.host``).

    Returns:
        ``(user name or None, status Markdown)``.

    Raises:
        StorageError: the audit log cannot be written.
    """
    from math import ceil

    from assistant.ui.auth import audit, client_ref

    name = user.strip()[:64] if isinstance(user, str) else ""
    secret = password if isinstance(password, str) else ""
    known = name in accounts.users
    entry: dict[str, Any] = {
        "action": "staff_login",
        "actor": name if known else None,
        # a failed login's user field may hold a mistyped password: only a keyed hash of it
        "user_ref": None if known else client_ref(settings.data_dir, "user:" + name),
        "client": client_ref(settings.data_dir, client),
    }
    wait = throttle.begin_attempt(name, client)
    if wait > 0:
        audit(settings.data_dir, {**entry, "outcome": "locked", "retry_after_s": ceil(wait)})
        log.warning("staff login refused: locked out")
        return None, f"Too many failed logins. Try again in {ceil(wait)} s."
    if accounts.verify(name, secret):
        throttle.record_success(name, client)
        audit(settings.data_dir, {**entry, "outcome": "success"})
        log.info("staff login ok")
        return name, f"Logged in as {html.escape(name)}."
    lock = throttle.retry_after(name, client)
    audit(settings.data_dir, {**entry, "outcome": "failure",
                              **({"locked_for_s": ceil(lock)} if lock > 0 else {})})
    log.warning("staff login refused: wrong user or password")
    if lock > 0:
        return None, f"Wrong user or password. Too many failed logins: try again in {ceil(lock)} s."
    return None, "Wrong user or password."


def _client_host(request: Any) -> str:
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def build_app(settings: Settings, *, service: TriageService | None = None,
              backend: ChatBackend | None = None, staff: Any = None) -> Any:
    """Build the Gradio Blocks (not launched).

    Args:
        settings: runtime settings (staff credentials, model, tables, index).
        service: the :class:`~assistant.service.TriageService` (built if None with
            ``backend``, or with the configured chat model, so that a capable model's
            second opinion and tool-call booking, and the streamed lead-ins, run in the
            served app).
        backend: chat model to build the service with (None: the configured one when it
            is marked ``llm_capable``, else no model, since nothing else uses it; an app
            whose model files are missing still starts, on the deterministic paths).
        staff: a :class:`~assistant.agent.staff.StaffConsole` (built if None and a staff
            password is set).

    Returns:
        ``gr.Blocks`` with ``triage_service`` set to the service. The staff tab is
        disabled, with instructions, when no staff password is configured.

    Patient turns run concurrently (:data:`CHAT_CONCURRENCY` threads) and show the
    deterministic answer at once; the optional lead-in is a separate event after it
    (:data:`LEAD_IN_CONCURRENCY`), generated through the service's bounded queue.
    """
    import gradio as gr

    if service is None:
        if backend is None and settings.llm_capable:
            # Only a model marked capable is used when serving (second opinion, tool-call
            # booking, lead-ins, staff tool choice); loading the embedded 135M model for
            # nothing cost ~0.5 GiB of the server's memory.
            from assistant.errors import AssistantError
            from assistant.llm import get_backend

            try:
                backend = get_backend(settings)
            except AssistantError as exc:
                log.warning("chat model unavailable (%s); serving the deterministic paths only",
                            type(exc).__name__)
        service = TriageService(settings, backend=backend)
    backend = service.backend
    patient = PatientService(service)
    from assistant.ui.auth import LoginThrottle, StaffAccounts

    accounts = StaffAccounts.from_settings(settings)
    throttle = LoginThrottle.from_settings(settings)
    staff_enabled = bool(accounts)
    if staff_enabled and staff is None:
        from assistant.agent.staff import StaffConsole

        staff = StaffConsole(settings, backend=backend)
    if not staff_enabled:
        print("staff tab disabled: run `assistant staff add-user NAME` or set ASSISTANT_STAFF_PASSWORD "
              "(and optionally ASSISTANT_STAFF_USER)", file=sys.stderr)

    with gr.Blocks(title="Triage Assistant 智能导诊", analytics_enabled=False) as app:
        gr.Markdown("# Triage Assistant · 智能导诊")
        with gr.Tab("Patient 患者"):
            gr.Markdown(f"_{NOTICE['en']}_  \n_{NOTICE['zh']}_", elem_id="standing-notice")
            with gr.Row():
                lang = _tolerant(gr.Radio(["Auto", "English", "中文"], value="Auto", label="Language 语言"),
                                 "Auto")
                age = _tolerant(gr.Number(label="Age 年龄", value=None, minimum=0, maximum=120))
                sex = _tolerant(gr.Dropdown(["", "F", "M"], value="", label="Sex 性别"), "")
                pregnant = _tolerant(gr.Checkbox(label="Pregnant 怀孕", value=False), False)
            banner = gr.HTML(elem_id="banner-box")
            lead = gr.Markdown(elem_id="lead-in")  # the model's checked lead-in, streamed after the answer
            card = gr.HTML(elem_id="card-box")
            questions = gr.Markdown(elem_id="questions")
            chatbot = _tolerant(gr.Chatbot(label="Chat", elem_id="chat", height=420), [])
            with gr.Accordion("Citations 参考资料", open=False):
                cites = gr.Markdown(elem_id="citations")
            state = gr.State(None)
            box = gr.Textbox(label="Describe your symptoms 请描述您的症状", elem_id="complaint",
                             lines=2, max_length=100_000)
            send = gr.Button("Send 发送", variant="primary", elem_id="send")
            confirm = gr.Button("Confirm booking 确认预约", elem_id="confirm")
            confirm_status = gr.Markdown(elem_id="confirm-status")
            outputs = [chatbot, banner, card, questions, cites, state, box, lead]
            inputs = [box, chatbot, state, lang, age, sex, pregnant]

            def chat(message: Any, history: Any, state: Any, lang_choice: Any, age: Any, sex: Any,
                     pregnant: Any, request: gr.Request) -> Iterator[tuple[Any, ...]]:
                yield from patient.respond(message, history, state, lang_choice, age, sex, pregnant, request)

            chat.__annotations__["request"] = gr.Request  # resolved by Gradio: the caller's request
            # the deterministic answer: many sessions at once, never behind the model
            sent = [send.click(chat, inputs, outputs, api_name="chat", concurrency_limit=CHAT_CONCURRENCY,
                               concurrency_id="chat"),
                    box.submit(chat, inputs, outputs, api_name=False, concurrency_limit=CHAT_CONCURRENCY,
                               concurrency_id="chat")]
            if patient.lead_in_on:  # then the model's lead-in, through the bounded generation queue
                for event in sent:
                    event.then(patient.lead_in, [state], [lead], api_name=False, show_progress="hidden",
                               concurrency_limit=LEAD_IN_CONCURRENCY, concurrency_id="lead_in")
            confirm.click(patient.confirm, [state], [confirm_status, state], api_name="confirm_booking")

        with gr.Tab("Staff 工作人员"):
            if not staff_enabled:
                gr.Markdown("Staff console disabled: add an account with `assistant staff add-user NAME` "
                            "or set `ASSISTANT_STAFF_PASSWORD` to enable it.")
            else:
                _staff_tab(gr, settings, staff, accounts, throttle)
    app.queue(default_concurrency_limit=4, max_size=QUEUE_SIZE)
    app.triage_service = service
    app.staff_accounts = accounts
    app.login_throttle = throttle
    return app


def _tolerant(component: Any, fallback: Any = None) -> Any:
    """Make ``component``'s ``preprocess`` never raise (returns ``component``): a payload
    Gradio would refuse (text in a number field, a value outside the choices, a
    malformed chat history, a non-boolean checkbox) becomes ``fallback``. Gradio's own
    refusal puts the typed value in the error message and logs a traceback, so text
    typed into the wrong field (often the complaint itself) would reach the log; our
    code validates instead (:func:`_profile` drops an invalid age or sex).

    The instance attribute is patched, not a subclass made: Gradio writes a ``.pyi``
    file next to the module of every component subclass."""
    import math

    original = component.preprocess

    def preprocess(payload: Any) -> Any:
        if isinstance(payload, float) and not math.isfinite(payload):
            return fallback
        try:
            value = original(payload)
        except Exception:  # noqa: BLE001 - refused payload: never echoed or logged
            return fallback
        if fallback is not None and value is not None and not isinstance(value, type(fallback)):
            return fallback  # e.g. text sent for the checkbox
        return value

    component.preprocess = preprocess
    return component


def index_progress_md(settings: Settings) -> str:
    """One Markdown line on the literature index being built in the background (``make
    demo`` serves after a first slice): state, chunks done / total, chunks/s and minutes
    left, from :func:`assistant.knowledge.index_progress`. Never raises."""
    from assistant.knowledge.progress import index_progress

    p = index_progress(settings)
    if p.state == "idle":
        return "Literature index: no ingest recorded."
    line = f"Literature index: **{p.state}**, {p.done:,} / {p.total:,} chunks ({p.fraction:.0%})"
    if p.state == "running" and p.chunks_per_s:
        line += f", {p.chunks_per_s:.1f} chunks/s"
        if p.eta_s is not None:
            line += f", about {p.eta_s / 60:.0f} min left"
    if p.state == "failed" and p.error:
        line += f": {md_escape(p.error[:200])}"
    return line + "."


def _staff_tab(gr: Any, settings: Settings, staff: Any, accounts: Any, throttle: Any) -> None:
    """The staff console. Its events have no API name (private: absent from
    ``/gradio_api/info``, unnamed in ``/config``, refused by the Gradio clients); the
    real gate is the per-session ``auth`` state (the logged-in user name, or None),
    checked in every handler, with every action audited under that name."""
    from assistant.ui.auth import audit, client_ref

    auth = gr.State(None)
    with gr.Row():
        user = gr.Textbox(label="User")
        password = gr.Textbox(label="Password", type="password")
        login = gr.Button("Log in", elem_id="staff-login")
    status = gr.Markdown("Not logged in.")
    query = gr.Textbox(label="Ask about resources (e.g. 'free ICU beds?', '今天儿科还有几个号？')")
    ask = gr.Button("Ask", elem_id="staff-ask")
    answer = gr.Markdown()
    table = gr.Dataframe(interactive=False)
    occupancy = gr.Dataframe(interactive=False, label="Occupancy by department")
    chart = gr.BarPlot(x="department", y="occupancy", label="Bed occupancy")
    queue = gr.Dataframe(interactive=False, label="Demand queue")
    reopt = gr.Button("Re-optimise 重新优化", elem_id="staff-reoptimise")
    reopt_out = gr.Markdown()

    def do_login(u: Any, p: Any, request: gr.Request) -> tuple[str | None, str]:
        return staff_login(settings, accounts, throttle, u, p, _client_host(request))

    def require(authed: Any, action: str, request: Any) -> str:
        if not isinstance(authed, str) or authed not in accounts.users:
            raise gr.Error("Staff login required.")
        audit(settings.data_dir, {"action": action, "actor": authed,
                                  "client": client_ref(settings.data_dir, _client_host(request))})
        return authed

    def do_ask(q: Any, authed: Any, request: gr.Request) -> Any:
        require(authed, "staff_query", request)
        return staff.ask(q if isinstance(q, str) else "")

    def do_dashboard(authed: Any, request: gr.Request) -> Any:
        require(authed, "staff_dashboard", request)
        return staff.dashboard()

    def do_reoptimise(authed: Any, request: gr.Request) -> Any:
        actor = require(authed, "staff_reoptimise_request", request)
        return staff.reoptimise_md(actor=actor)

    for fn in (do_login, do_ask, do_dashboard, do_reoptimise):  # string annotations (PEP 563)
        fn.__annotations__["request"] = gr.Request
    # api_name=False: no name in /config either, private (not in /gradio_api/info)
    login.click(do_login, [user, password], [auth, status], api_name=False, concurrency_limit=2)
    ask.click(do_ask, [query, auth], [answer, table], api_name=False)
    gr.Button("Refresh dashboard", elem_id="staff-dashboard").click(
        do_dashboard, [auth], [occupancy, chart, queue], api_name=False
    )
    reopt.click(do_reoptimise, [auth], [reopt_out], api_name=False)

    index_md = gr.Markdown()

    def do_index_progress(authed: Any, request: gr.Request) -> str:
        require(authed, "staff_index_progress", request)
        return index_progress_md(settings)

    do_index_progress.__annotations__["request"] = gr.Request
    gr.Button("Literature index progress", elem_id="staff-index").click(
        do_index_progress, [auth], [index_md], api_name=False)

    from assistant.ui.operations_tab import operations_panel  # issue 15: staff-only, same login gate

    operations_panel(gr, settings, auth, require)


# --- serving -------------------------------------------------------------------------

#: Paths the app does not use; answered 404 before they reach Gradio. Exact paths and
#: prefixes ("/monitoring" also blocks "/monitoring/summary").
BLOCKED_PATHS = (
    "/gradio_api/upload",
    "/gradio_api/upload_progress",
    "/upload",
    "/monitoring",
    "/gradio_api/monitoring",
    "/gradio_api/profiling",
    "/openapi.json",
    "/gradio_api/openapi.json",
    "/docs",
    "/redoc",
    "/gradio_api/mcp",
    "/gradio_api/proxy=",
    "/proxy=",
    "/gradio_api/vibe-code",
    "/gradio_api/vibe-edit",
    "/gradio_api/vibe-starter-queries",
    "/gradio_api/undo-vibe-edit",
    "/gradio_api/dev",
    "/gradio_api/run-history",
    "/gradio_api/runs",
    "/gradio_api/process_recording",
    "/login",
    "/logout",
    "/gradio_api/token",
    "/gradio_api/user",
)

#: Added to every HTTP response. Gradio's page needs inline scripts and styles.
SECURITY_HEADERS = (
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
     b"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
     b"media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
     b"base-uri 'self'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


def is_blocked(path: str) -> bool:
    """True if ``path`` (URL path, any case, any trailing slashes) is in :data:`BLOCKED_PATHS`."""
    from urllib.parse import unquote

    p = "/" + unquote(path).lower().strip("/")
    while "//" in p:
        p = p.replace("//", "/")
    return any(p.startswith(b) if b.endswith("=") else p == b or p.startswith(b + "/")
               for b in BLOCKED_PATHS)


class SecurityMiddleware:
    """Pure ASGI middleware: 404 for :data:`BLOCKED_PATHS`, :data:`SECURITY_HEADERS` on
    every response (streaming responses pass through unbuffered)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if is_blocked(scope.get("path", "")):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json"), *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": b'{"detail":"Not Found"}'})
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": headers + list(SECURITY_HEADERS)}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def index_status(settings: Settings) -> str:
    """Retrieval index readiness, without loading the embedding model.

    Returns:
        ``"ok"``, ``"missing"`` (no index folder and no ``chroma_url``), ``"empty"`` (no
        chunks), ``"corrupt (<error type>)"`` (the store cannot be opened or counted) or
        ``"no embedder (<reason>)"`` (the embedding model is not installed).
    """
    from assistant.errors import AssistantError

    try:
        from assistant.knowledge.embeddings import resolve_model_dir

        resolve_model_dir(settings)
    except AssistantError as exc:
        return f"no embedder ({str(exc)[:120]})"
    if settings.chroma_url is None and not settings.resolved_index_dir.exists():
        return "missing"
    try:
        from assistant.knowledge.store import get_client

        client = get_client(settings)
        names = {getattr(c, "name", c) for c in client.list_collections()}
        total = sum(client.get_collection(n).count() for n in ("literature", "hospital") if n in names)
    except Exception as exc:  # noqa: BLE001 - any store failure means "not usable"
        return f"corrupt ({type(exc).__name__})"
    return "ok" if total > 0 else "empty"


def health(blocks: Any) -> tuple[bool, dict[str, Any]]:
    """Readiness of a built app: ``(ready, report)``.

    ``report`` = ``{"status": "ready"|"not ready", "hospital_db": "ok"|reason,
    "knowledge_base": "ok"|reason, "index": index_status, "retrieval": bool,
    "chat_model": bool}``. Ready means the hospital tables answer a query and the
    knowledge base has its departments; a missing index only degrades retrieval.
    """
    from sqlalchemy import text

    service = blocks.triage_service
    report: dict[str, Any] = {}
    if service.hospital is None:
        report["hospital_db"] = "missing"
    else:
        try:
            with service.hospital() as session:
                session.execute(text("SELECT count(*) FROM clinic_slots")).scalar_one()
            report["hospital_db"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, never raise, from a probe
            report["hospital_db"] = f"error ({type(exc).__name__})"
    try:
        report["knowledge_base"] = "ok" if len(service.kb.catalog) > 0 else "empty"
    except Exception as exc:  # noqa: BLE001
        report["knowledge_base"] = f"error ({type(exc).__name__})"
    report["index"] = getattr(blocks, "index_status", None) or index_status(service.settings)
    report["retrieval"] = getattr(service.triager, "retriever", None) is not None
    report["chat_model"] = service.backend is not None
    ready = report["hospital_db"] == "ok" and report["knowledge_base"] == "ok"
    report = {"status": "ready" if ready else "not ready", **report}
    return ready, report


def asgi_app(blocks: Any) -> Any:
    """The served ASGI app: ``blocks`` mounted at ``/`` in a FastAPI app without docs
    routes, with ``GET /healthz`` (200 ready / 503 not, JSON of :func:`health`) and
    :class:`SecurityMiddleware` outermost."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    if not hasattr(blocks, "index_status"):
        blocks.index_status = index_status(blocks.triage_service.settings)
    outer = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @outer.get("/healthz", include_in_schema=False)
    def healthz() -> Any:
        ready, report = health(blocks)
        return JSONResponse(report, status_code=200 if ready else 503)

    outer = gr.mount_gradio_app(outer, blocks, path="/", show_error=False, enable_monitoring=False,
                                mcp_server=False, run_history=False, footer_links=["gradio", "settings"])
    outer.add_middleware(SecurityMiddleware)
    return outer


class BackgroundServer:
    """The hardened app served by uvicorn in a daemon thread (tests, embedding).

    Attributes:
        url: ``http://host:port/``.
    """

    def __init__(self, blocks: Any, *, host: str = "127.0.0.1", port: int = 7860) -> None:
        import threading
        import time

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(asgi_app(blocks), host=host, port=port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the web UI did not start on {host}:{port}")
            time.sleep(0.05)
        self.url = f"http://{host}:{port}/"

    def close(self) -> None:
        """Stop serving and wait for the thread (at most 30 s)."""
        self.server.should_exit = True
        self.thread.join(timeout=30)


def launch(app: Any, *, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the hardened app (:func:`asgi_app`) with uvicorn (blocking)."""
    import uvicorn

    print(f"* serving the triage assistant on http://{host}:{port}/ (health: /healthz)", file=sys.stderr)
    uvicorn.run(asgi_app(app), host=host, port=port, log_level="warning", access_log=False)
