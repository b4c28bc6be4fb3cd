"""Email channel against a real aiosmtpd server on 127.0.0.1 (plain, STARTTLS, implicit TLS)."""

from __future__ import annotations

import socket
from email.message import EmailMessage
from typing import Any

import pytest

from monitor.deliver.base import make_sender
from monitor.settings import EmailChannel
from tests.receivers import SmtpReceiver, sample_alert

PASSWORD = "s3cr3t-Passw0rd!"


def channel(smtp: SmtpReceiver | None = None, **extra: Any) -> EmailChannel:
    data: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port if smtp else 25,
        "security": smtp.security if smtp else "none",
        "from": "feedwatch <alerts@example.org>",
        "to": ["desk@example.org", "night@example.org"],
        "timeout": "5s",
    }
    if smtp and smtp.security != "none":
        data["ca_file"] = str(smtp.ca_file)
    data.update(extra)
    return EmailChannel.model_validate(data)


def sender_for(ch: EmailChannel, allow: bool = True) -> Any:
    return make_sender("editors", ch, None, allow_private_networks=allow)  # type: ignore[arg-type]


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


async def test_plain_smtp_multipart_alternative_with_all_fields() -> None:
    alert = sample_alert(title="Fire <b>near</b> Lisbon & Porto")
    async with SmtpReceiver() as smtp:
        result = await sender_for(channel(smtp)).send([alert])
        assert result.ok and result.status == 250, result.error
        (mail,) = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["desk@example.org", "night@example.org"]
    assert mail.mail_from == "alerts@example.org"
    assert not mail.tls
    msg = mail.message
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "[feedwatch] wildfire-evacuations: Fire <b>near</b> Lisbon & Porto"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Feedwatch-Alert-Id"] == alert["id"]
    text, html = parts(msg)
    url = alert["article"]["url"]
    for body in (text, html):
        assert "Example World" in body
        assert "2024-01-03 10:00 UTC" in body
        assert "wildfire-evacuations" in body
        assert "evacuation order" in body and "Lisbon" in body
        assert "three villages" in body
    assert "Fire <b>near</b> Lisbon & Porto" in text and url in text
    assert "Fire &lt;b&gt;near&lt;/b&gt; Lisbon &amp; Porto" in html
    assert "<b>near</b>" not in html
    assert f'<a href="{url}">' in html
    assert "<mark><b>evacuation order</b></mark>" in html


async def test_header_injection_in_title_adds_no_header() -> None:
    alert = sample_alert(title="Title\r\nBcc: victim@x\r\n\r\nbody", feed="F\nX-Evil: 1")
    async with SmtpReceiver() as smtp:
        result = await sender_for(channel(smtp)).send([alert])
        assert result.ok, result.error
        (mail,) = await smtp.wait_for(1)
    msg = mail.message
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert "victim@x" not in mail.rcpt_tos
    assert msg["Subject"] == "[feedwatch] wildfire-evacuations: Title Bcc: victim@x body"
    header_block = mail.data.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in header_block


async def test_html_escapes_script_and_refuses_javascript_links() -> None:
    alert = sample_alert(title='<script>alert("x")</script>', url="javascript:alert(1)")
    async with SmtpReceiver() as smtp:
        assert (await sender_for(channel(smtp)).send([alert])).ok
        (mail,) = await smtp.wait_for(1)
    _text, html = parts(mail.message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html


async def test_starttls_with_trustme_ca_and_auth() -> None:
    async with SmtpReceiver(security="starttls", username="alerts", password=PASSWORD) as smtp:
        ch = channel(smtp, username="alerts", password=PASSWORD)
        result = await sender_for(ch).send([sample_alert()])
        assert result.ok, result.error
        (mail,) = await smtp.wait_for(1)
    assert mail.tls and mail.auth_user == "alerts"


async def test_implicit_tls_mode() -> None:
    async with SmtpReceiver(security="tls") as smtp:
        result = await sender_for(channel(smtp)).send([sample_alert()])
        assert result.ok, result.error
        (mail,) = await smtp.wait_for(1)
    assert mail.tls


async def test_untrusted_certificate_is_refused_retryably() -> None:
    async with SmtpReceiver(security="starttls") as smtp:
        ch = channel(smtp, ca_file=None)  # the trustme CA is not in the system store
        result = await sender_for(ch).send([sample_alert()])
        assert smtp.messages == []
    assert not result.ok and result.retryable
    assert "TLS" in (result.error or "") or "certificate" in (result.error or "").lower()


async def test_missing_ca_file_fails_permanently(tmp_path: Any) -> None:
    async with SmtpReceiver(security="starttls") as smtp:
        ch = channel(smtp, ca_file=str(tmp_path / "nope.pem"))
        result = await sender_for(ch).send([sample_alert()])
    assert not result.ok and not result.retryable and "ca_file" in (result.error or "")


async def test_wrong_password_fails_permanently_without_leaking_it() -> None:
    async with SmtpReceiver(security="starttls", username="alerts", password=PASSWORD) as smtp:
        ch = channel(smtp, username="alerts", password="wrong-" + PASSWORD)
        result = await sender_for(ch).send([sample_alert()])
        assert smtp.messages == [] and smtp.auth_attempts  # one try per mechanism
        assert set(smtp.auth_attempts) == {"alerts"}
    assert not result.ok and not result.retryable
    assert result.status == 535
    assert "login" in (result.error or "") and "alerts" in (result.error or "")
    assert PASSWORD not in (result.error or "")


async def test_temporary_smtp_error_is_retryable_then_delivered() -> None:
    async with SmtpReceiver(data_replies=["451 4.3.0 try again later"]) as smtp:
        sender = sender_for(channel(smtp))
        first = await sender.send([sample_alert()])
        second = await sender.send([sample_alert()])
        mails = await smtp.wait_for(1)
    assert not first.ok and first.retryable and first.status == 451
    assert "try again later" in (first.error or "")
    assert second.ok and len(mails) == 1


async def test_refused_recipients_fail_permanently() -> None:
    async with SmtpReceiver(rcpt_reply="550 5.1.1 no such user") as smtp:
        result = await sender_for(channel(smtp)).send([sample_alert()])
    assert not result.ok and not result.retryable and result.status == 550
    assert "desk@example.org" in (result.error or "")


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch = channel(None, port=port)
    result = await sender_for(ch).send([sample_alert()])
    assert not result.ok and result.retryable


async def test_private_smtp_host_refused_unless_allowed() -> None:
    async with SmtpReceiver() as smtp:
        result = await sender_for(channel(smtp), allow=False).send([sample_alert()])
        assert smtp.messages == []
    assert not result.ok and not result.retryable and "refused" in (result.error or "")


async def test_digest_is_one_email_grouped_by_watchlist() -> None:
    alerts = [
        sample_alert(id="1", watchlist="storms", title="Storm A"),
        sample_alert(id="2", watchlist="fires", title="Fire B"),
        sample_alert(id="3", watchlist="storms", title="Storm C"),
    ]
    async with SmtpReceiver() as smtp:
        assert (await sender_for(channel(smtp)).send(alerts)).ok
        (mail,) = await smtp.wait_for(1)
    msg = mail.message
    assert msg["Subject"] == "[feedwatch] digest: 3 alerts (storms, fires)"
    assert msg["X-Feedwatch-Alert-Id"] is None
    text, html = parts(msg)
    for body in (text, html):
        assert body.index("storms (2 alerts)") < body.index("Storm A") < body.index("Storm C")
        assert body.index("Storm C") < body.index("fires (1 alert)") < body.index("Fire B")


@pytest.mark.parametrize("bad", ["not-an-address", "a@b\r\nBcc: x@y"])
def test_bad_recipient_is_a_config_error(bad: str) -> None:
    with pytest.raises(ValueError):
        channel(None, to=[bad])


async def test_non_ascii_title_survives_in_subject_and_bodies() -> None:
    title = "Évacuation à Lisboa — 火事 “quoted”"
    async with SmtpReceiver() as smtp:
        assert (await sender_for(channel(smtp)).send([sample_alert(title=title)])).ok
        (mail,) = await smtp.wait_for(1)
    assert mail.data.isascii()  # RFC 2047 headers, transfer-encoded bodies
    assert b"\r\n" in mail.data
    msg = mail.message
    assert msg["Subject"] == f"[feedwatch] wildfire-evacuations: {title}"
    text, html = parts(msg)
    assert title in text and title in html
