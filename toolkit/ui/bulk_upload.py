"""Roll out a spreadsheet of configurations: check it, see the plan, run it, keep the results."""

from __future__ import annotations

import streamlit as st

from toolkit.ui import bulk_flow
from toolkit.ui.connection import workspace

P = "bu"  # widget key prefix of this page


def render() -> None:
    st.title("Bulk upload")
    st.caption(
        "One row per company and event: `companyId, event, amount[, configuration]`. "
        "Every row ends in exactly one result; a stopped or interrupted run resumes where it "
        "left off when you run the same file again."
    )
    ws = workspace()
    bulk_flow.render(ws, kind="configs", prefix=P)


render()
