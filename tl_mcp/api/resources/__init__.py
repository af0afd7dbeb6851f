"""One module per API resource; `TwelveLabsClient` holds one instance of each."""
