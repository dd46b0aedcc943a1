"""One module per job kind; each exposes the handler ``handler(ctx, payload)`` that jobs.registry names.

    synthetic.py       synthetic-score    made-up SEAM numbers (tests, benchmarks)
    score.py           score              SEAM for a score run, chunk by chunk
    negatives.py       negatives          one variant's negatives for a dataset
    validate_model.py  validate-model     load a registered checkpoint, one forward pass
    samples.py         generate-samples   PM samples for blind annotation
    embed_map.py       embed-map          2-D map of a dataset's prompt embeddings
    experiments.py     filter-ppo, augment-ppo   the Runs page's experiments
    demo.py            demo-build         `seam demo`'s build, loading each stage into the store as it lands
"""
