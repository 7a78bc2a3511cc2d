"""The staff dashboard on slabot's HTTP app: login, the open queue with live countdowns, ticket timelines, a report.

:mod:`bot.web.dashboard.web` serves it (off unless ``[dashboard]`` names staff
logins), :mod:`bot.web.dashboard.views` builds what the pages show,
:mod:`bot.web.dashboard.auth` hashes passwords and checks logins and CSRF tokens.
"""
