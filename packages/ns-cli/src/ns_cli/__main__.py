"""`python -m ns_cli` (used by torchrun: `torchrun --nproc-per-node 2 -m ns_cli train ...`)."""

from ns_cli.main import main

if __name__ == "__main__":
    main()
