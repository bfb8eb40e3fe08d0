"""The randomized differential test against workerd: generator, both executors, comparison.

``ops`` generates storage operation sequences, ``codec`` is the type-tagged JSON both sides speak,
``runner`` runs a sequence in workerd (``harness.mjs`` + ``worker.js``, through npm's ``miniflare``)
and in ``durable`` and compares them op by op, ``allowances`` lists the deliberate differences.
``tests/test_differential.py`` is the test; ``python tests/differential/run.py`` runs it by hand.
``interleave`` is the second mode: concurrent calls into one object, compared by what each step
saw (``tests/test_interleave_differential.py``, ``run_interleave.py`` by hand). ``rpc_ops`` is the
third: random RPC interactions of a caller with an object, run by ``rpc_worker.js`` in workerd
(``tests/test_rpc_differential.py``, ``run_rpc.py`` by hand).
"""
