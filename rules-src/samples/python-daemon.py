# Benign: a daemon that detaches and sends its output to a log file.
import socket,subprocess,os
log = os.open("/var/log/app.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.dup2(log, 1)
os.dup2(log, 2)
server = socket.create_server(("127.0.0.1", 8080))
