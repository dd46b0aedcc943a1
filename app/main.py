"""SEAM Studio dashboard: the Streamlit entry point (`seam serve` runs it).

    streamlit run app/main.py        # with $SEAM_DB naming the project store

Pages are registered with `st.navigation`; each is one thin file under ``pages/``.
"""

from __future__ import annotations

from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"

# (file under pages/, title, Material icon); the first one is the default page.
PAGES = (
    ("overview.py", "Overview", ":material/dashboard:"),
    ("models.py", "Models", ":material/model_training:"),
    ("data.py", "Data", ":material/table_view:"),
    ("score.py", "Score", ":material/calculate:"),
    ("explore.py", "Explore", ":material/search:"),
    ("annotate.py", "Annotate", ":material/rate_review:"),
    ("runs.py", "Runs", ":material/rocket_launch:"),
)


def main() -> None:
    import streamlit as st

    st.set_page_config(page_title="SEAM Studio", page_icon=":material/join_inner:", layout="wide")
    pages = [st.Page(str(PAGES_DIR / file), title=title, icon=icon, default=(i == 0))
             for i, (file, title, icon) in enumerate(PAGES)]
    st.navigation(pages).run()


if __name__ == "__main__":
    main()
