"""The Streamlit app's pages (one module per page) and the pieces they share (`common`).

Pages translate between widgets and the library; the rules live in `toolkit.models`,
`toolkit.bulk`, `toolkit.registry` and friends, never here.
"""
