
	synthetic
tokens
chunk_bytesd