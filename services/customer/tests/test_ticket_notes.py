"""The 360 timeline reads an agent's internal note as a note: no reply, no status change."""

from __future__ import annotations

from careops_published import ticketing as tk

from customer.projections import _ticket_change


def test_an_internal_note_is_no_agent_reply_and_changes_no_status() -> None:
    note = tk.ReplyAdded(author="agent", author_id="ag-1", internal=True)
    reply = tk.ReplyAdded(author="agent", author_id="ag-1")
    assert _ticket_change(note) == ("agent_note", "agent wrote an internal note", None)
    assert _ticket_change(reply) == ("agent_replied", "agent replied", "in_progress")
