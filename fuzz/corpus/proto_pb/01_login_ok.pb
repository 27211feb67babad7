Z
alices1x �̰ժ3*default