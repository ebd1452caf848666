"""
The record of context moves (`manage.py move_context`), in `default`: where
each moved context's alias is now, and a journal of every move.

No URL is stored in clear: the location a process connects to is sealed
(`cleave.core.locations.seal`), and what an operator reads has its password
masked (`locations.shown`).
"""

from __future__ import annotations

from django.db import models

from cleave.core import locations


class ContextLocation(models.Model):
    """Where a context's alias lives since its last move; processes follow it."""

    label = models.CharField(primary_key=True, max_length=100)
    sealed_url = models.TextField(
        help_text="The database URL, encrypted (Fernet, from SECRET_KEY)."
    )
    shown_url = models.CharField(max_length=500, help_text="The database URL without its password.")
    # each move of the label raises it; a process follows a higher epoch than its own
    epoch = models.PositiveIntegerField()
    moved_at = models.DateTimeField()
    pause_seconds = models.FloatField(help_text="How long writes to the context were paused.")

    class Meta:
        app_label = "cleave"
        db_table = locations.TABLE

    def __str__(self) -> str:
        return f"{self.label} at {self.shown_url}"


class ContextMove(models.Model):
    """One run of `move_context`: what it moved where, how far it got, and its pause."""

    class State(models.TextChoices):
        COPYING = "copying", "Copying"  # the target being migrated and filled; the source serves
        FROZEN = "frozen", "Frozen"  # the source refuses writes; copying and verifying
        MOVED = "moved", "Moved"  # the new location is recorded
        FAILED = "failed", "Failed"  # given up; the source serves again

    label = models.CharField(max_length=100)
    source = models.CharField(max_length=500)
    target = models.CharField(max_length=500)
    sealed_target = models.TextField()
    state = models.CharField(max_length=16, choices=State.choices)
    started_at = models.DateTimeField()
    frozen_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows = models.BigIntegerField(default=0)
    pause_seconds = models.FloatField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        app_label = "cleave"
        db_table = "cleave_context_move"
        indexes = [models.Index(fields=["label", "-started_at"], name="cleave_move_label")]

    def __str__(self) -> str:
        return f"{self.label}: {self.source} → {self.target} ({self.state})"
