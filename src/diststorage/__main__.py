from diststorage.cli.main import app

app(prog_name="diststorage")
