"""``python -m expressive_retrieval.serving``: the operators' CLI (see ``cli``)."""

from expressive_retrieval.serving.cli import main

if __name__ == "__main__":
    main()
