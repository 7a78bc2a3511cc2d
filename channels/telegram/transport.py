"""The Bot API transport of the staff chat: one python-telegram-bot application, its updates and its sends.

:class:`TelegramTransport` is built from plain values (the token, the Bot API's
base URL, whether updates come by webhook) and knows nothing of slabot's
tickets. It takes updates by long polling (starting it deletes any webhook
Telegram still has) or, in webhook mode, registers the webhook with its
secret and ``max_connections=1`` (Telegram then posts updates one at a time,
in the order of their ids) and takes what the HTTP app hands to
:meth:`TelegramTransport.put_update`. Stopping leaves a webhook set, so
Telegram keeps what arrives meanwhile. Every call to the Bot API raises the
channel's own errors (:mod:`channels.telegram.errors`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from telegram import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from channels.telegram.errors import NotAnUpdateError, TelegramStoppedError, translated

# PTB 22 reads time periods as timedelta only when asked to; otherwise RetryAfter warns while it is built
os.environ.setdefault("PTB_TIMEDELTA", "1")

Buttons = Sequence[Sequence[tuple[str, str]]]  # rows of (label, callback data) under a message
UpdateHandler = Callable[[Update], Awaitable[None]]
UpdateSink = Callable[[dict[str, Any]], Awaitable[None]]  # an update as posted to the webhook: put_update's shape
POLL_INTERVAL = 0.2  # seconds between two getUpdates that came back empty-handed
POLL_TIMEOUT = timedelta(seconds=10)  # how long one getUpdates waits for an update


@contextlib.asynccontextmanager
async def _bot_api() -> AsyncIterator[None]:
    """python-telegram-bot's errors raised as the channel's own."""
    try:
        yield
    except TelegramError as exc:
        raise translated(exc) from exc


def _markup(buttons: Buttons) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in row]
                                 for row in buttons])


class TelegramTransport:
    """One bot on the Bot API at ``base_url`` (Telegram's own when None); see the module docstring."""

    def __init__(self, token: str, *, base_url: str | None = None, webhook: bool = False) -> None:
        builder = Application.builder().token(token)
        if base_url:
            builder = builder.base_url(f"{base_url}/bot").base_file_url(f"{base_url}/file/bot")
        if webhook:
            builder = builder.updater(None)  # updates come through :meth:`put_update`, not PTB's own server
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()

    def handle(self, *, messages: UpdateHandler, buttons: UpdateHandler) -> None:
        """Hand commands and replies to ``messages``, button presses to ``buttons``."""
        async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await messages(update)

        async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await buttons(update)

        self.application.add_handler(MessageHandler(filters.COMMAND | filters.REPLY, on_message))
        self.application.add_handler(CallbackQueryHandler(on_button))

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, *, webhook_url: str | None = None, webhook_secret: str | None = None,
                    poll: bool = True) -> None:
        """Take updates: on the webhook ``webhook_url`` (with its secret) when given, else by long polling
        (``poll=False``: not yet, see :meth:`start_polling`; sending works either way)."""
        async with _bot_api():
            await self.application.initialize()
            await self.application.start()
            if webhook_url is not None:
                await self.application.bot.set_webhook(webhook_url, secret_token=webhook_secret, max_connections=1,
                                                       drop_pending_updates=False)
            elif poll:
                await self.start_polling()

    async def start_polling(self) -> None:
        """Take updates by long polling (one process per bot token may: Telegram ends the other's poll with 409)."""
        updater = self.application.updater
        assert updater is not None
        if updater.running:
            return
        async with _bot_api():
            # start_polling deletes the webhook first, so switching back to polling needs nothing more
            await updater.start_polling(poll_interval=POLL_INTERVAL, timeout=POLL_TIMEOUT, drop_pending_updates=False)

    async def stop_polling(self) -> None:
        """Stop taking updates by long polling (the update being handled is finished)."""
        updater = self.application.updater
        if updater is not None and updater.running:
            async with _bot_api():
                await updater.stop()

    @property
    def polling(self) -> bool:
        updater = self.application.updater
        return updater is not None and updater.running

    async def stop(self) -> None:
        """Stop polling and the handlers (idempotent, also after a start that failed half way)."""
        await self.stop_polling()
        async with _bot_api():
            if self.application.running:
                await self.application.stop()
            await self.application.shutdown()

    async def delete_webhook(self) -> None:
        """Forget the webhook (Telegram then keeps updates for ``getUpdates``)."""
        async with _bot_api():
            await self.application.bot.delete_webhook(drop_pending_updates=False)

    @property
    def running(self) -> bool:
        return bool(self.application.running)

    async def put_update(self, data: dict[str, Any]) -> None:
        """Queue an update posted to the webhook for the handlers.

        Raises :class:`NotAnUpdateError` when ``data`` is not one, :class:`TelegramStoppedError` while stopped.
        """
        try:
            update = Update.de_json(data, self.application.bot)
        except (ValueError, TypeError, KeyError) as exc:
            raise NotAnUpdateError(str(exc)) from exc
        if not self.application.running:
            raise TelegramStoppedError("the staff chat is not running")
        await self.application.update_queue.put(update)

    # -- sending ----------------------------------------------------------------------

    async def send_message(self, chat_id: int, text: str, *, buttons: Buttons | None = None) -> None:
        """Post ``text`` to the chat, with ``buttons`` under it."""
        async with _bot_api():
            await self.application.bot.send_message(chat_id, text,
                                                    reply_markup=_markup(buttons) if buttons is not None else None)

    async def edit_message(self, chat_id: int, message_id: int, text: str, *, buttons: Buttons | None = None) -> None:
        """Replace the text (and buttons) of a message the bot posted."""
        async with _bot_api():
            await self.application.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id,
                reply_markup=_markup(buttons) if buttons is not None else None)

    async def send_photo(self, chat_id: int, photo: bytes, *, caption: str, filename: str) -> None:
        """Post a picture with its caption."""
        async with _bot_api():
            await self.application.bot.send_photo(chat_id, photo, caption=caption, filename=filename)

    async def reply(self, message: Message, text: str, *, force_reply: bool = False) -> None:
        """Answer ``message`` in its chat; ``force_reply`` asks its sender to reply to the answer."""
        async with _bot_api():
            await message.reply_text(text, reply_markup=ForceReply(selective=True) if force_reply else None)

    async def answer_button(self, query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
        """Answer a button press (the short notice Telegram shows; ``alert``: as a dialog)."""
        async with _bot_api():
            await query.answer(text, show_alert=True if alert else None)


__all__ = ["Buttons", "TelegramTransport", "UpdateHandler", "UpdateSink"]
