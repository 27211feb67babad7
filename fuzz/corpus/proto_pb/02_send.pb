�
bobhéllo 👋 "q" \ 
"a1