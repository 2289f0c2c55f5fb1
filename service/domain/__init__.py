"""Domain rules: statuses, transitions, timelines and the services that record them.

Nothing here imports Flask: functions take a SQLAlchemy `Session`.
"""
