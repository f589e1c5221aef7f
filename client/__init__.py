"""The ``squeezer`` command-line client.

cli.py       Click commands (thin: parse options, call one function, print)
api.py       ApiClient: the Squeezer HTTP API over requests
uploader.py  file discovery, checksums, parallel uploads with retries
transfer.py  retry policy and result downloads (shared by upload/download)
progress.py  progress bars (terminal) or plain lines (logs, pipes)
output.py    tables and JSON for stdout
errors.py    one ClickException subclass per way a command can fail
"""
