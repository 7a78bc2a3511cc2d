"""The staff conversation on Telegram: the queue, answers to customers, reminders and pages."""
