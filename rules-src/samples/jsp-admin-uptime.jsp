<%-- Benign: an admin page that runs one fixed command and only echoes a request parameter. --%>
<%@ page import="java.io.*" %>
<%
    String host = request.getParameter("host");
    Process p = Runtime.getRuntime().exec("uptime");
    out.println("<h1>" + org.owasp.encoder.Encode.forHtml(host) + "</h1>");
%>
