"""`python -m sig_keras ...`: the `sig-keras` command (`sig_keras.cli`)."""

from sig_keras.cli import console_main

if __name__ == "__main__":
    console_main()
