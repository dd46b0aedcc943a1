"""Models: register PM/RM checkpoints and validate them by loading them in a worker job."""

from pathlib import Path

import streamlit as st

from app import ui
from jobs import enqueue_job
from seam.errors import SeamError
from seam.models.refs import is_hub_ref, resolve_model_ref

DTYPES = ("auto", "float32", "bfloat16", "float16")
TEMPLATES = ("stackllama", "chat", "custom format string")

store = ui.get_store()
st.title("Models")
st.caption("Policy models (PM) and reward models (RM): local folders in the HF `save_pretrained` layout or with one "
           "`.gguf` file, or hub ids (`org/name`) already in the server's Hugging Face cache, optionally with a PEFT "
           "adapter. Each checkpoint is validated by loading it in a worker job, never in the dashboard.")

with st.form("register", border=True):
    st.subheader("Register a checkpoint")
    c1, c2, c3 = st.columns([1, 3, 2])
    role = c1.radio("Role", ("pm", "rm"), format_func=str.upper, horizontal=True)
    path = c2.text_input("Checkpoint folder or hub id", placeholder="/path/to/model or org/name")
    name = c3.text_input("Name (optional)")
    c4, c5, c6 = st.columns([3, 1, 2])
    adapter = c4.text_input("PEFT adapter folder (optional)")
    dtype = c5.selectbox("dtype", DTYPES, help="auto: float32 on CPU, bfloat16 on a GPU that supports it")
    template_kind = c6.selectbox("Template", TEMPLATES)
    rm_label = st.text_input("RM label (multi-label RMs only)", placeholder="index or label name",
                             help="which output logit of a multi-label RM is the reward; leave empty for a one-label RM")
    custom = st.text_area("Custom template (with {prompt} and {response})", value="Question: {prompt}\n\nAnswer: {response}",
                          height=90, disabled=template_kind != TEMPLATES[2])
    submitted = st.form_submit_button("Register and validate", type="primary")

if submitted:
    template = custom if template_kind == TEMPLATES[2] else template_kind
    problems = []
    for label, ref, required in (("checkpoint", path.strip(), True), ("adapter", adapter.strip(), False)):
        if is_hub_ref(ref):  # a hub id must already be in the server's HF cache (nothing is downloaded)
            try:
                resolve_model_ref(ref, label)
            except SeamError as exc:
                problems.append(str(exc))
        elif (ref or required) and (not ref or not Path(ref).expanduser().is_dir()):
            problems.append(f"{label} folder {ref!r} does not exist on the server; give a local folder or a cached hub id")
    if template_kind == TEMPLATES[2] and ("{prompt}" not in custom or "{response}" not in custom):
        problems.append("a custom template needs both {prompt} and {response}")
    if problems:
        for p in problems:
            st.error(p)
    else:
        def stored(ref: str) -> str:  # hub ids stay ids (the cache's current snapshot loads); folders absolute
            return ref if is_hub_ref(ref) else str(Path(ref).expanduser().resolve())

        folder = stored(path.strip())
        adapter_path = stored(adapter.strip()) if adapter.strip() else None
        models = store.models()
        same = models[(models["role"] == role) & (models["path"] == folder)
                      & (models["adapter"].fillna("") == (adapter_path or ""))]
        model_id = int(same["id"].iloc[0]) if len(same) else store.register_model(
            role, folder, name=name.strip() or None, adapter=adapter_path, dtype=dtype, template=template,
            meta={"rm_label": int(rm_label) if rm_label.strip().isdigit() else rm_label.strip()}
            if role == "rm" and rm_label.strip() else None)
        if ui.has_handler("validate-model"):
            job = enqueue_job(store, "validate-model", {"model_id": model_id})
            st.success(f"{'Already registered' if len(same) else 'Registered'} as model #{model_id}; "
                       f"validation job {job} queued.")
        else:
            ui.missing_handler_note("validate-model", f"model #{model_id} is registered but cannot be validated")

models = store.models()
st.subheader("Registered checkpoints")
if models.empty:
    st.info("No checkpoints yet. Register a PM and an RM above.")
else:
    rows = []
    for m in models.to_dict("records"):
        v = (m.get("meta") or {}).get("validation") or {}
        rows.append({
            "id": m["id"], "name": m["name"], "role": m["role"].upper(), "path": m["path"], "adapter": m["adapter"],
            "dtype": m["dtype"], "template": m["template"], "fingerprint": m["fingerprint"] or "",
            "validated": "ok" if v.get("ok") else ("failed" if v else "not yet"),
            "architecture": v.get("architecture", ""), "parameters": v.get("parameters"),
            "check": (f"reward {v['check']['reward']:.3f}" if "reward" in v.get("check", {}) else
                      f"log-lik/token {v['check']['logprob_mean']:.3f}" if "logprob_mean" in v.get("check", {}) else
                      v.get("error", "")),
        })
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"parameters": st.column_config.NumberColumn(format="%d")})
    c1, c2 = st.columns([3, 1])
    again = c1.selectbox("Validate again", models["id"].tolist(),
                         format_func=lambda i: ui.model_label(models[models["id"] == i].iloc[0]))
    if c2.button("Queue validation", width="stretch") and ui.has_handler("validate-model"):
        st.toast(f"validation job {enqueue_job(store, 'validate-model', {'model_id': int(again)})} queued")



@st.fragment(run_every=ui.REFRESH_S)
def validation_jobs() -> None:
    st.subheader("Validation jobs")
    ui.jobs_panel(store, ("validate-model",), key="models")


validation_jobs()
