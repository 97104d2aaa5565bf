"""iCompleat: the contract as one routes table, the envelope, the HTTP client and its limiter,
the transaction models, and a local sandbox of the API. Imports the foundation only.
"""
