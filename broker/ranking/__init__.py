"""The ranking model: expected time to a successful result per candidate destination."""
