"""The Telegram Bot API stand-in, driven by the real python-telegram-bot.

Each test serves ``TelegramStandIn`` with uvicorn on a free loopback port and
points PTB at it (``base_url``/``base_file_url``): either a whole
``Application`` polling for updates, with a /ping command that answers "pong"
under an inline button and a callback handler that answers the button, or a
bare ``Bot`` for single calls. Plain pytest functions run their scenario with
``asyncio.run``.

PTB 22 warns (PTBDeprecationWarning) whenever it reads a time period as an
int, and ``RetryAfter`` does so in its own constructor: under
``filterwarnings = error`` a 429 would surface as that warning. The tests opt in
to ``datetime.timedelta`` periods with ``PTB_TIMEDELTA=1``, as slabot must.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.demo.standins.loopback import serving
from bot.demo.standins.telegram import BOT_USERNAME, TelegramStandIn, post_update_to

TOKEN = "123:TEST"
PIET = 1001  # a user writing to the bot in private
STAFF_GROUP = -1001234567890  # a supergroup


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def bot_for(url: str, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot")


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not hold in time")


async def pong(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    again = InlineKeyboardMarkup([[InlineKeyboardButton("again", callback_data="again")]])
    await update.effective_message.reply_text("pong", reply_markup=again)


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer(f"pressed {query.data}")
    await query.edit_message_text("pong, pressed")


@asynccontextmanager
async def polling(standin: TelegramStandIn) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """The stand-in served, and a PTB Application polling it; both stopped in reverse order."""
    async with serving(standin.app()) as url:
        app = (Application.builder().token(TOKEN).base_url(f"{url}/bot").base_file_url(f"{url}/file/bot")
               .build())
        app.add_handler(CommandHandler("ping", pong))
        app.add_handler(CallbackQueryHandler(pressed))
        assert app.updater is not None
        await app.initialize()
        try:
            await app.start()
            await app.updater.start_polling(poll_interval=0.05, timeout=timedelta(seconds=1))
            yield app
        finally:
            if app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()


def scenario(body: Callable[[TelegramStandIn, str], Awaitable[None]]) -> None:
    """Run ``body(standin, url)`` against a served stand-in, without a PTB Application."""
    standin = TelegramStandIn()

    async def main() -> None:
        async with serving(standin.app()) as url:
            await body(standin, url)

    asyncio.run(main())


def test_ping_in_a_private_chat_is_answered_with_pong() -> None:
    async def main() -> None:
        standin = TelegramStandIn()
        async with polling(standin):
            pushed = standin.push_message(PIET, PIET, "/ping", username="piet")
            await eventually(lambda: len(standin.sent) == 1)
        reply = standin.sent[0]
        assert (reply.method, reply.chat_id, reply.text, reply.reply_to_message_id) == ("sendMessage", PIET, "pong",
                                                                                         None)
        assert reply.reply_markup == {"inline_keyboard": [[{"text": "again", "callback_data": "again"}]]}
        assert reply.message_id == pushed["message"]["message_id"] + 1  # message ids count per chat
        assert pushed["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 5}]
        # what PTB calls on the way up and down
        assert standin.calls["getMe"] == 1 and standin.calls["deleteWebhook"] == 1
        assert standin.calls["getUpdates"] >= 2

    asyncio.run(main())


def test_a_command_in_a_group_is_answered_only_when_addressed_to_this_bot() -> None:
    async def main() -> None:
        standin = TelegramStandIn()
        async with polling(standin):
            standin.push_message(STAFF_GROUP, PIET, "/ping@some_other_bot")
            ours = standin.push_message(STAFF_GROUP, PIET, f"/ping@{BOT_USERNAME} now")
            await eventually(lambda: len(standin.sent) >= 1)
            await asyncio.sleep(0.1)
        assert ours["message"]["chat"] == {"id": STAFF_GROUP, "type": "supergroup", "title": "Support"}
        assert ours["message"]["entities"][0]["length"] == len(f"/ping@{BOT_USERNAME}")
        [reply] = standin.messages_to(STAFF_GROUP)
        assert reply.text == "pong"
        assert reply.reply_to_message_id == ours["message"]["message_id"]  # PTB quotes outside private chats

    asyncio.run(main())


def test_a_pressed_button_is_answered_and_its_message_edited() -> None:
    async def main() -> None:
        standin = TelegramStandIn()
        async with polling(standin) as app:
            standin.push_message(PIET, PIET, "/ping")
            await eventually(lambda: len(standin.sent) == 1)
            standin.push_callback(PIET, PIET, "again", standin.sent[0].message_id)
            await eventually(lambda: len(standin.edits) == 1)
            with pytest.raises(BadRequest, match="(?i)query is too old"):
                await app.bot.answer_callback_query(standin.answered_callbacks[0].callback_query_id)
        [answered] = standin.answered_callbacks
        assert answered.text == "pressed again" and answered.query["data"] == "again"
        [edit] = standin.edits
        assert (edit.method, edit.chat_id, edit.message_id, edit.text) == ("editMessageText", PIET,
                                                                           standin.sent[0].message_id, "pong, pressed")
        assert "reply_markup" not in standin.message(PIET, edit.message_id)  # an edit without markup drops it

    asyncio.run(main())


def test_each_update_is_delivered_once() -> None:
    async def main() -> None:
        standin = TelegramStandIn()
        async with polling(standin):
            for _ in range(3):
                standin.push_message(PIET, PIET, "/ping")
            await eventually(lambda: len(standin.sent) == 3)
            await eventually(lambda: standin.pending == [])  # the next poll confirmed them
            await asyncio.sleep(0.2)
            assert len(standin.sent) == 3

    asyncio.run(main())


def test_get_updates_forgets_below_the_offset_and_long_polls() -> None:
    async def body(standin: TelegramStandIn, url: str) -> None:
        async with bot_for(url) as bot:
            first = standin.push_message(PIET, PIET, "hallo")["update_id"]
            standin.push_message(PIET, PIET, "nog iets")
            assert [u.update_id for u in await bot.get_updates()] == [first, first + 1]
            assert [u.update_id for u in await bot.get_updates()] == [first, first + 1]  # not confirmed yet
            assert [u.update_id for u in await bot.get_updates(offset=first + 1)] == [first + 1]
            waiting = asyncio.create_task(bot.get_updates(offset=first + 2, timeout=timedelta(seconds=5)))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            started = asyncio.get_running_loop().time()
            standin.push_message(PIET, PIET, "daar ben ik weer")
            [update] = await waiting
            assert asyncio.get_running_loop().time() - started < 1
            assert update.message is not None and update.message.text == "daar ben ik weer"
            assert await bot.get_updates(offset=first + 3) == ()
            assert standin.pending == []

    scenario(body)


def test_a_second_poller_ends_the_first_with_a_conflict() -> None:
    async def body(standin: TelegramStandIn, url: str) -> None:
        async with bot_for(url) as first, bot_for(url) as second:
            waiting = asyncio.create_task(first.get_updates(timeout=timedelta(seconds=5)))
            await eventually(lambda: standin.calls["getUpdates"] == 1)
            await asyncio.sleep(0.05)
            assert await second.get_updates() == ()
            with pytest.raises(Conflict, match="only one bot instance"):
                await waiting

    scenario(body)


def test_rate_limit_surfaces_as_retry_after() -> None:
    async def body(standin: TelegramStandIn, url: str) -> None:
        standin.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
        async with bot_for(url) as bot:
            with pytest.raises(RetryAfter) as raised:
                await bot.send_message(PIET, "pong")
            assert raised.value.retry_after == timedelta(seconds=7)
            assert standin.sent == []
            await bot.send_message(PIET, "pong")
        assert [s.text for s in standin.sent] == ["pong"]
        assert standin.calls["sendMessage"] == 2

    scenario(body)


def test_telegram_down_is_a_network_error_until_it_is_back() -> None:
    async def body(standin: TelegramStandIn, url: str) -> None:
        async with bot_for(url) as bot:
            standin.down = True
            with pytest.raises(NetworkError) as raised:
                await bot.send_message(PIET, "pong")
            assert type(raised.value) is NetworkError and "Bad Gateway" in raised.value.message
            standin.fail_next("sendMessage", 502, "Bad Gateway")
            standin.down = False
            with pytest.raises(NetworkError):
                await bot.send_message(PIET, "pong")
            await bot.send_message(PIET, "pong")
        assert len(standin.sent) == 1

    scenario(body)


def test_refusals_telegram_gives() -> None:
    async def body(standin: TelegramStandIn, url: str) -> None:
        with pytest.raises(InvalidToken):
            async with bot_for(url, "123:WRONG"):
                pass
        async with bot_for(url) as bot:
            with pytest.raises(EndPointNotFound):
                await bot.do_api_request("sendCarrierPigeon", api_kwargs={"chat_id": PIET})
            with pytest.raises(BadRequest, match="(?i)Unsupported start tag"):
                await bot.send_message(PIET, "ik <3 jullie", parse_mode="HTML")
            with pytest.raises(BadRequest, match="(?i)end tag corresponding"):
                await bot.send_message(PIET, "<b>vet", parse_mode="HTML")
            sent = await bot.send_message(PIET, '<b>T-1042</b> &lt;3 <a href="https://x.nl">link</a>',
                                          parse_mode="HTML")
            assert sent.text == "T-1042 <3 link"  # stored as Telegram stores it: plain text and entities
            assert [(e.type, e.offset, e.length, e.url) for e in sent.entities] == [
                ("bold", 0, 6, None), ("text_link", 10, 4, "https://x.nl")]
            with pytest.raises(BadRequest, match="(?i)not modified"):
                await bot.edit_message_text(sent.text_html, PIET, sent.message_id, parse_mode="HTML")
            with pytest.raises(BadRequest, match="(?i)too long"):
                await bot.send_message(PIET, "x" * 4097)
            standin.blocked.add(PIET)
            with pytest.raises(Forbidden, match="blocked"):
                await bot.send_message(PIET, "pong")
        [sent_html] = standin.sent
        assert sent_html.parse_mode == "HTML" and sent_html.text is not None and sent_html.text.startswith("<b>")

    scenario(body)


def test_uploads_commands_chats_and_webhooks() -> None:
    async def body(standin: TelegramStandIn, url: str) -> None:
        async with bot_for(url) as bot:
            photo = await bot.send_photo(STAFF_GROUP, b"\x89PNG\r\n", caption="scherm", filename="scherm.png",
                                         message_thread_id=7)
            document = await bot.send_document(PIET, b"%PDF-1.4", filename="factuur.pdf")
            await bot.set_my_commands([("ping", "Is de bot er?")], language_code="nl")
            commands = await bot.get_my_commands(language_code="nl")
            chat = await bot.get_chat(STAFF_GROUP)
            assert await bot.set_webhook("https://support.example.nl/telegram", secret_token="s3cret")
            info = await bot.get_webhook_info()
            with pytest.raises(Conflict, match="webhook is active"):
                await bot.get_updates()
            assert await bot.delete_webhook()
            assert (await bot.get_webhook_info()).url == ""
        assert photo.caption == "scherm" and photo.photo and photo.message_thread_id == 7
        assert document.document is not None and document.document.file_name == "factuur.pdf"
        shot, pdf = standin.sent
        assert (shot.method, shot.text, shot.message_thread_id) == ("sendPhoto", "scherm", 7)
        assert shot.file is not None and (shot.file.name, shot.file.data) == ("scherm.png", b"\x89PNG\r\n")
        assert pdf.file is not None and (pdf.method, pdf.file.name, pdf.file.data) == ("sendDocument", "factuur.pdf",
                                                                                       b"%PDF-1.4")
        assert [(c.command, c.description) for c in commands] == [("ping", "Is de bot er?")]
        assert (chat.id, chat.type) == (STAFF_GROUP, "supergroup")
        assert info.url == "https://support.example.nl/telegram" and standin.webhook is None

    scenario(body)


def test_post_update_to_sends_the_update_with_the_secret_header() -> None:
    received: list[tuple[str | None, Any]] = []

    async def webhook(request: Request) -> Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return JSONResponse({})

    async def main() -> None:
        standin = TelegramStandIn()
        update = standin.push_message(PIET, PIET, "/start")
        async with serving(Starlette(routes=[Route("/telegram", webhook, methods=["POST"])])) as url:
            response = await post_update_to(f"{url}/telegram", update, "s3cret")
        assert response.status_code == 200
        assert received == [("s3cret", update)]
        assert Update.de_json(update, None).message is not None

    asyncio.run(main())


def test_deliver_posts_pending_updates_to_the_webhook_in_order_and_keeps_the_refused_one() -> None:
    received: list[tuple[str | None, int]] = []
    refuse = [False]

    async def webhook(request: Request) -> Response:
        update = await request.json()
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), update["update_id"]))
        return Response(status_code=500 if refuse[0] else 200)

    async def body(standin: TelegramStandIn, url: str) -> None:
        with pytest.raises(RuntimeError, match="no webhook"):
            await standin.deliver()
        async with bot_for(url) as bot:
            with pytest.raises(BadRequest, match="unallowed characters"):
                await bot.set_webhook("https://support.example.nl/telegram", secret_token="geen spaties")
            assert await bot.set_webhook("https://support.example.nl/telegram", secret_token="s3cret",
                                         max_connections=1)
        async with serving(Starlette(routes=[Route("/telegram", webhook, methods=["POST"])])) as hook:
            first = standin.push_message(STAFF_GROUP, PIET, "/ping")["update_id"]
            second = standin.push_message(STAFF_GROUP, PIET, "nog een")["update_id"]
            refuse[0] = True
            assert [a.status_code for a in await standin.deliver(f"{hook}/telegram")] == [500]
            assert [u["update_id"] for u in standin.pending] == [first, second]  # kept, as Telegram retries
            refuse[0] = False
            assert [a.status_code for a in await standin.deliver(f"{hook}/telegram")] == [200, 200]
            assert standin.pending == [] and await standin.deliver(f"{hook}/telegram") == []
        assert received == [("s3cret", first), ("s3cret", first), ("s3cret", second)]

    scenario(body)
