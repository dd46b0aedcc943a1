"""Data: import RL sets and negatives (every format `seam import` reads), preview, map columns, see problems."""

import tempfile
from pathlib import Path

import streamlit as st

from app import data_io, ui
from db import load, queries
from seam.data import ImportConfig
from seam.errors import SeamError

NONE = "(none)"

store = ui.get_store()
st.title("Data")
st.caption("Instruction sets (an RL set: id, prompt, chosen golden response, optional rejected and meta) and "
           "negatives (worse responses per instruction, by variant). Files: JSONL, JSON, CSV, Parquet (gzip too), "
           "HF `save_to_disk` folders, StackExchange `Posts.xml`, HH-RLHF, SHP, TRL and SEAM JSON layouts.")
folder = ui.project_folder(store) or Path(tempfile.gettempdir()) / "seam-uploads"
uploads = folder / "uploads"


def source_picker(key: str) -> Path | None:
    """An upload or a path on the server; returns the file's path on the server."""
    how = st.radio("Source", ("upload a file", "path on the server"), horizontal=True, key=f"{key}-how")
    if how == "upload a file":
        up = st.file_uploader("File", key=f"{key}-upload",
                              type=["jsonl", "json", "ndjson", "csv", "parquet", "pq", "gz", "xml"])
        if up is None:
            return None
        return data_io.save_upload(up.name, up.getvalue(), uploads)
    text = st.text_input("File or folder on the server", key=f"{key}-path", placeholder="/data/rl.jsonl")
    if not text.strip():
        return None
    path = Path(text.strip()).expanduser()
    if not path.exists():
        st.error(f"{path} does not exist on the server; check the path")
        return None
    return path


def mapping_picker(columns: list[str], fields: tuple[str, ...], key: str) -> dict[str, str | None]:
    guess = data_io.guess_mapping(columns, fields)
    options = [NONE, *columns]
    cols = st.columns(len(fields))
    out = {}
    for c, f in zip(cols, fields):
        g = guess.get(f)
        label = f + (" *" if f in data_io.REQUIRED else "")
        choice = c.selectbox(label, options, index=options.index(g) if g in options else 0, key=f"{key}-map-{f}")
        out[f] = None if choice == NONE else choice
    return out


tab_inst, tab_neg, tab_sets = st.tabs(["Import instructions", "Import negatives", "Datasets"])

with tab_inst:
    fmt = st.selectbox("Format", load.FORMATS, key="inst-fmt",
                       help="'instructions file' is the SEAM layout with any column names (map them below); "
                            "the others are the `seam import` layouts")
    path = source_picker("inst")
    if path is not None:
        name = st.text_input("Dataset name", value=path.name.split(".")[0], key="inst-name")
        mapping = None
        config = ImportConfig()
        try:
            if fmt == load.CONTRACT:
                raw = data_io.preview(path, 200)
                st.markdown(f"**Preview** (first {min(len(raw), 20)} rows as in the file)")
                st.dataframe(raw.head(20), hide_index=True, width="stretch")
                st.markdown("**Column mapping** (* required)")
                mapping = mapping_picker([str(c) for c in raw.columns], data_io.INSTRUCTION_FIELDS, "inst")
                problems = data_io.scan_problems(raw, mapping)
                st.markdown(f"**Checks** on the first {len(raw)} rows")
                for p in problems:
                    st.warning(p)
                if not problems:
                    st.success("no problems found in these rows")
            else:
                with st.expander(f"{fmt} options"):
                    c1, c2, c3 = st.columns(3)
                    limit = c1.number_input("Limit (rows, 0 = all)", 0, value=0, step=100, key="inst-limit")
                    split = c2.text_input("HF split (DatasetDict folders)", key="inst-split") or None
                    min_answers = c3.number_input("StackExchange: min answers", 2, value=2, key="inst-min-answers")
                    config = ImportConfig(limit=int(limit) or None, split=split, min_answers=int(min_answers))
                conv, stats = data_io.converted_preview(fmt, path, 20, split=config.split)
                st.markdown(f"**Preview** after conversion ({len(conv)} rows; "
                            f"{sum(stats.skipped.values())} skipped so far)")
                st.dataframe(conv, hide_index=True, width="stretch")
                for reason, count in stats.skipped.items():
                    st.warning(f"{count} skipped: {reason}")
        except SeamError as exc:
            st.error(str(exc))
        if st.button("Import into the project", type="primary", key="inst-go"):
            try:
                with st.spinner("importing"):
                    report = load.instructions_file(store, path, name.strip() or path.stem, fmt=fmt, mapping=mapping, config=config)
                st.success(f"dataset #{report.dataset_id} '{name}': {report.rows} instructions stored")
                st.write(report.counts)
                for p in report.problems:
                    st.warning(p)
            except SeamError as exc:
                st.error(str(exc))

with tab_neg:
    datasets = store.datasets()
    if datasets.empty:
        st.info("Import an instruction set first; negatives point at its ids.")
    else:
        ds = st.selectbox("Dataset", datasets["id"].tolist(), key="neg-ds",
                          format_func=lambda i: f"#{i} {datasets.set_index('id').loc[i, 'name']}")
        path = source_picker("neg")
        if path is not None:
            try:
                raw = data_io.preview(path, 200)
                st.dataframe(raw.head(20), hide_index=True, width="stretch")
                mapping = mapping_picker([str(c) for c in raw.columns], data_io.NEGATIVE_FIELDS, "neg")
                for p in data_io.scan_problems(raw, mapping, kind="negatives"):
                    st.warning(p)
            except SeamError as exc:
                st.error(str(exc))
                mapping = None
            replace = st.checkbox("Replace negatives already stored for the same (id, variant)", key="neg-replace")
            if mapping and st.button("Import negatives", type="primary", key="neg-go"):
                try:
                    with st.spinner("importing"):
                        report = load.negatives_file(store, int(ds), path, mapping=mapping, replace=replace)
                    st.success(f"{report.rows} negatives stored")
                    st.write(report.counts)
                except SeamError as exc:
                    st.error(str(exc))

with tab_sets:
    datasets = store.datasets()
    if datasets.empty:
        st.info("No datasets yet.")
    else:
        counts = queries.negative_counts(store)
        st.dataframe(datasets[["id", "name", "n_instructions", "source_path", "content_hash", "created_at"]],
                     hide_index=True, width="stretch")
        ds = st.selectbox("Show", datasets["id"].tolist(), key="sets-ds",
                          format_func=lambda i: f"#{i} {datasets.set_index('id').loc[i, 'name']}")
        mine = counts[counts["dataset_id"] == ds]
        st.markdown("**Negatives by variant**")
        if mine.empty:
            st.caption("none yet: build them on the Score page or import a negatives file")
        else:
            st.dataframe(mine[["variant", "negatives", "instructions"]], hide_index=True)
        cats = queries.categories(store, int(ds))
        if cats:
            st.caption("Categories (meta.category): " + ", ".join(cats))
        st.markdown("**First instructions**")
        st.dataframe(queries.instruction_page(store, int(ds), 50), hide_index=True, width="stretch")
