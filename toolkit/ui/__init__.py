"""The Streamlit app's pages (one module per page) and the pieces they share, one concept per
module: `connection` (the workspace, API calls), `caches`, `filters`, `jobs`, `forms`, `text`
(`esc`), `shell` and `server_check` (the sidebar), `access` (who may do what) and `runs` (bulk
runs owned by the server); parts of pages that are concepts of their own (`bulk_flow`,
`bulk_run`, `config_edits`, `config_detail`, `cost_lines`). No module here imports a page.

Pages translate between widgets and the library; the rules live in `toolkit.models`,
`toolkit.bulk`, `toolkit.registry` and friends, never here.
"""
