"""The EnKash coins app: `streamlit run app.py` (or `make run`).

The shell only: page config, who may use it (`toolkit.ui.access`: private to this machine
unless sign-in is configured), the connection (sidebar and sandbox banner on every page) and
the navigation. Each page is a module under `toolkit/ui/` that calls the library.
"""

import streamlit as st

from toolkit.ui import access
from toolkit.ui.shell import shell

st.set_page_config(
    page_title="EnKash coins",
    page_icon=":material/toll:",
    layout="wide",
    initial_sidebar_state="auto",  # open on a desktop, collapsed on a phone
)

who = access.gate()  # stops here unless this visitor may see the app


PAGES = [
    st.Page(
        "toolkit/ui/overview.py",
        title="Overview",
        icon=":material/dashboard:",
        url_path="overview",
    ),
    st.Page(
        "toolkit/ui/configurations.py",
        title="Configurations",
        icon=":material/table_edit:",
        url_path="configurations",
    ),
    st.Page(
        "toolkit/ui/create.py", title="Create", icon=":material/add_circle:", url_path="create"
    ),
    st.Page(
        "toolkit/ui/bulk_upload.py",
        title="Bulk upload",
        icon=":material/upload_file:",
        url_path="bulk-upload",
    ),
    st.Page(
        "toolkit/ui/allocate.py",
        title="Allocate & balances",
        icon=":material/redeem:",
        url_path="allocate",
    ),
    st.Page(
        "toolkit/ui/activity.py", title="Activity", icon=":material/history:", url_path="activity"
    ),
    st.Page("toolkit/ui/cost.py", title="Cost", icon=":material/payments:", url_path="cost"),
]


def _home() -> None:
    """`/` opens the Overview at its own address: the default page of a navigation has no
    path of its own, so `/overview` (a link, a bookmark) would be "Page not found"."""
    st.switch_page(PAGES[0])


HOME = st.Page(_home, title="Home", url_path="home", default=True, visibility="hidden")

page = st.navigation([HOME, *PAGES])
shell(who)
page.run()
