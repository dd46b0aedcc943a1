"""Several processes on one SQLite store: writers never lose rows, readers never fail."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pandas as pd

from db import open_store

WRITER = textwrap.dedent("""
    import sys
    from db import open_store
    store = open_store(sys.argv[1])
    name, inst = sys.argv[2], int(sys.argv[3])
    for i in range(500):
        store.add_annotation(inst, f"a{i}", f"b{i}", ("a", "b", "tie", "both_bad")[i % 4], name,
                             response_a_ref="gold", response_b_ref=f"negative:{i}")
""")

READER = textwrap.dedent("""
    import json, sys, time
    from db import open_store
    store = open_store(sys.argv[1])
    reads, errors, last = 0, [], 0
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            n = store.count("annotations")
            df = store.annotations(instruction_id=int(sys.argv[2]))
            assert len(df) >= n, (len(df), n)  # rows only ever appear
            assert n >= last, (n, last)
            last = n
            reads += 1
        except Exception as exc:
            errors.append(repr(exc))
        if last >= 1000:
            break
    print(json.dumps({"reads": reads, "errors": errors[:5], "n_errors": len(errors), "last": last}))
""")


def test_two_writers_and_a_reader(tmp_path):
    store = open_store(tmp_path)
    ds = store.import_instructions("rl", pd.DataFrame({"id": ["q0"], "prompt": ["p"], "chosen": ["c"]}))
    inst = store.instruction_ids(ds)["q0"]
    store.close()

    def spawn(code: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code, str(tmp_path), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    reader = spawn(READER, str(inst))
    writers = [spawn(WRITER, name, str(inst)) for name in ("ann1", "ann2")]
    for w in writers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err
    out, err = reader.communicate(timeout=180)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["n_errors"] == 0, report["errors"]
    assert report["reads"] > 1 and report["last"] == 1000

    store = open_store(tmp_path)
    ann = store.annotations()
    assert len(ann) == 1000
    assert ann.groupby("annotator").size().to_dict() == {"ann1": 500, "ann2": 500}
    assert not ann.duplicated(["annotator", "response_a"]).any()
    store.close()
