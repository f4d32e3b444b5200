"""The Gradio app: a patient chat tab and a staff console behind a login.

``build_app(settings)`` builds the Blocks (models and tables load once, here);
``launch(app, host, port)`` serves it. Sessions are isolated: each browser tab has its
own :class:`PatientSession` in ``gr.State`` (server-side), and nothing patient-specific
lives in module or app globals.
"""

from __future__ import annotations

import hmac
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
    d = result.departments[0]
    name = d.name_zh if zh else d.name_en
    label = name if f"({d.code})" in name else f"{name} ({d.code})"
    rows = [f"<b>{'科室' if zh else 'Department'}:</b> {html.escape(label)}"]
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
        """Stream one reply: yields (history, banner, card, questions, citations, state, textbox).

        Urgency advice, once computed, always reaches the patient: booking and lead-in
        faults degrade inside the service, and only a fault in triage itself shows the
        generic "call 120 if very unwell" reply.
        """
        state = state if isinstance(state, PatientSession) else PatientSession()
        history = list(history or [])
        text = message if isinstance(message, str) else str(message or "")
        lang = {"English": "en", "中文": "zh"}.get(lang_choice) or state.language
        if not text.strip():
            lang = lang or self.settings.default_language
            history.append({"role": "assistant", "content": EMPTY_REPLY[lang]})
            yield history, "", "", "", "", state, ""
            return
        history.append({"role": "user", "content": text[:2000] + (" …" if len(text) > 2000 else "")})
        try:
            profile = _profile(age, sex, pregnant, lang)
            address = getattr(getattr(request, "client", None), "host", None)
            turn = self.service.turn(state, text, profile, lead_in=False, client=client_key(address))
        except Exception:  # noqa: BLE001 - never a traceback in front of a patient
            log.error("patient turn failed in triage (session ref hidden)")
            history.append({"role": "assistant", "content": ERROR_REPLY[lang or "en"]})
            yield history, "", "", "", "", state, ""
            return
        result = turn.result
        banner = banner_html(result)
        questions = "\n".join(f"- {md_escape(q)}" for q in result.follow_up_questions)
        card = card_html(result, turn.booking)
        history.append({"role": "assistant", "content": ""})
        for piece in _chunks(turn.answer):
            history[-1]["content"] += piece
            yield history, banner, card, questions, citations_md(result), state, ""
        if self.settings.llm_lead_in and self.service.backend is not None and not result.safe_reply:
            lead = self.service.lead_in("\n".join(state.turns), result)
            if lead:
                history[-1]["content"] = f"{md_escape(lead)}\n\n{turn.answer}"
                yield history, banner, card, questions, citations_md(result), state, ""


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


def _chunks(text: str, size: int = 80) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield text[i: i + size]


def check_staff_login(settings: Settings, user: str, password: str) -> bool:
    """Constant-time check of staff credentials from settings."""
    if settings.staff_password is None:
        return False
    ok_user = hmac.compare_digest((user or "").encode(), settings.staff_user.encode())
    ok_pw = hmac.compare_digest((password or "").encode(), settings.staff_password.get_secret_value().encode())
    return ok_user and ok_pw


def build_app(settings: Settings, *, service: TriageService | None = None,
              backend: ChatBackend | None = None, staff: Any = None) -> Any:
    """Build the Gradio Blocks (not launched).

    Args:
        settings: runtime settings (staff credentials, model, tables, index).
        service: the :class:`~assistant.service.TriageService` (built if None with
            ``backend``, or with the configured chat model, so that the capable-model
            second opinion and the model's tool-call booking run in the served app).
        backend: chat model to build the service with (None: the configured one; an app
            whose model files are missing still starts, on the deterministic paths).
        staff: a :class:`~assistant.agent.staff.StaffConsole` (built if None and a staff
            password is set).

    Returns:
        ``gr.Blocks`` with ``triage_service`` set to the service. The staff tab is
        disabled, with instructions, when no staff password is configured.
    """
    import gradio as gr

    if service is None:
        if backend is None:
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
    staff_enabled = settings.staff_password is not None
    if staff_enabled and staff is None:
        from assistant.agent.staff import StaffConsole

        staff = StaffConsole(settings, backend=backend)
    if not staff_enabled:
        print("staff tab disabled: set ASSISTANT_STAFF_PASSWORD (and optionally ASSISTANT_STAFF_USER)",
              file=sys.stderr)

    with gr.Blocks(title="Triage Assistant 智能导诊") as app:
        gr.Markdown("# Triage Assistant · 智能导诊")
        with gr.Tab("Patient 患者"):
            gr.Markdown(f"_{NOTICE['en']}_  \n_{NOTICE['zh']}_", elem_id="standing-notice")
            with gr.Row():
                lang = gr.Radio(["Auto", "English", "中文"], value="Auto", label="Language 语言")
                age = gr.Number(label="Age 年龄", value=None, minimum=0, maximum=120)
                sex = gr.Dropdown(["", "F", "M"], value="", label="Sex 性别")
                pregnant = gr.Checkbox(label="Pregnant 怀孕", value=False)
            banner = gr.HTML(elem_id="banner-box")
            card = gr.HTML(elem_id="card-box")
            questions = gr.Markdown(elem_id="questions")
            chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=420)
            with gr.Accordion("Citations 参考资料", open=False):
                cites = gr.Markdown(elem_id="citations")
            state = gr.State(None)
            box = gr.Textbox(label="Describe your symptoms 请描述您的症状", elem_id="complaint",
                             lines=2, max_length=100_000)
            send = gr.Button("Send 发送", variant="primary", elem_id="send")
            confirm = gr.Button("Confirm booking 确认预约", elem_id="confirm")
            confirm_status = gr.Markdown(elem_id="confirm-status")
            outputs = [chatbot, banner, card, questions, cites, state, box]
            inputs = [box, chatbot, state, lang, age, sex, pregnant]

            def chat(message: Any, history: Any, state: Any, lang_choice: Any, age: Any, sex: Any,
                     pregnant: Any, request: gr.Request) -> Iterator[tuple[Any, ...]]:
                yield from patient.respond(message, history, state, lang_choice, age, sex, pregnant, request)

            chat.__annotations__["request"] = gr.Request  # resolved by Gradio: the caller's request
            send.click(chat, inputs, outputs, api_name="chat", concurrency_limit=4)
            box.submit(chat, inputs, outputs, api_name=False, concurrency_limit=4)
            confirm.click(patient.confirm, [state], [confirm_status, state], api_name="confirm_booking")

        with gr.Tab("Staff 工作人员"):
            if not staff_enabled:
                gr.Markdown("Staff console disabled: set `ASSISTANT_STAFF_PASSWORD` to enable it.")
            else:
                _staff_tab(gr, settings, staff)
    app.queue(default_concurrency_limit=4, max_size=64)
    app.triage_service = service
    return app


def _staff_tab(gr: Any, settings: Settings, staff: Any) -> None:
    auth = gr.State(False)
    with gr.Row():
        user = gr.Textbox(label="User")
        password = gr.Textbox(label="Password", type="password")
        login = gr.Button("Log in")
    status = gr.Markdown("Not logged in.")
    query = gr.Textbox(label="Ask about resources (e.g. 'free ICU beds?', '今天儿科还有几个号？')")
    ask = gr.Button("Ask")
    answer = gr.Markdown()
    table = gr.Dataframe(interactive=False)
    occupancy = gr.Dataframe(interactive=False, label="Occupancy by department")
    chart = gr.BarPlot(x="department", y="occupancy", label="Bed occupancy")
    queue = gr.Dataframe(interactive=False, label="Demand queue")
    reopt = gr.Button("Re-optimise 重新优化")
    reopt_out = gr.Markdown()

    def do_login(u: str, p: str) -> tuple[bool, str]:
        ok = check_staff_login(settings, u, p)
        log.info("staff login %s", "ok" if ok else "refused")
        return ok, "Logged in." if ok else "Wrong user or password."

    def guarded(fn: Any) -> Any:
        def run(*args: Any) -> Any:
            *rest, authed = args
            if authed is not True:
                raise gr.Error("Staff login required.")
            return fn(*rest)

        return run

    login.click(do_login, [user, password], [auth, status], api_name="staff_login")
    ask.click(guarded(staff.ask), [query, auth], [answer, table], api_name="staff_query")
    gr.Button("Refresh dashboard").click(
        guarded(staff.dashboard), [auth], [occupancy, chart, queue], api_name="staff_dashboard"
    )
    reopt.click(guarded(staff.reoptimise_md), [auth], [reopt_out], api_name="staff_reoptimise")


def launch(app: Any, *, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the app (blocking)."""
    app.launch(server_name=host, server_port=port, show_error=False)
