"""The Streamlit graph explorer."""
