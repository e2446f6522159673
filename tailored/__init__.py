"""tailored: fine-tune a small pretrained model on your examples, prove it got better, ship it.

    import tailored
    run = tailored.train("examples/support.jsonl")
    print(tailored.load(run.path).generate("How do I reset my password?"))
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["check", "train", "evaluate", "load", "serve"]


def __getattr__(name: str):
    # Imported lazily: `import tailored` stays fast and does not pull in torch until it is needed.
    if name in ("check", "train", "evaluate"):
        from tailored import pipeline

        return getattr(pipeline, name)
    if name == "load":
        from tailored.tuned import load

        return load
    if name == "serve":
        from tailored.server import serve

        return serve
    raise AttributeError(f"module 'tailored' has no attribute {name!r}")
