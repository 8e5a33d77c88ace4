"""Small HTTP pieces shared by proxy/ and library_api/: the component shape, the JSON error
contract, ETag matching, bearer tokens and capped body reads. It imports neither of them."""
