"""E-mail: parsing raw mail into the inbound vocabulary, sending over SMTP, polling over IMAP."""
