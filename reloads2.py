import socket, time, subprocess
socks=[]
t0=time.time()
for i in range(530):
    s=socket.socket(); s.connect(("127.0.0.1",19882))
    s.sendall(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    socks.append(s)
time.sleep(0.3)
for k in range(6):
    t=time.time()
    r=subprocess.run(["curl","-s","-o","/dev/null","-m","4","-w","%{http_code}","http://127.0.0.1:19882/healthz"],capture_output=True,text=True)
    print("t=%.1f healthz"%(t-t0),r.stdout,"%.2fs"%(time.time()-t),flush=True)
