"""The HTTP app: the channels' webhooks, the staff dashboard and health, on one Starlette app."""
