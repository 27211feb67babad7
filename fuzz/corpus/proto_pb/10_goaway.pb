º$
ws://10.0.0.2:8080/v1/wsshutdown