"""The investigators' side of the `cleanwindow` command.

It talks to the API over HTTP with a staff token and does every decryption and sealing
on this machine, with the same `app.domain.crypto` the server uses: the server only ever
sees ciphertext and public keys.
"""
